"""Run each modality's registered solver on its own state, in lock-step on one grid.

Each modality's solver function ``fn(model, z, ts, **options)`` runs unchanged in its own thread with a
proxy model; a call of the proxy submits (z, t) and blocks. When every modality has submitted a state
at the same time t, one joint network call answers all of them (one NFE). A solver that calls at other
times, or a different number of times, than the others is an error, not a silent desynchronisation.
"""
from __future__ import annotations

import threading
from typing import Callable

import torch
from torch import Tensor
from torchdiffeq import odeint

from ..processes import BFNProcess
from .model import JointDenoiser


class _Aborted(Exception):
    """Raised inside a modality's thread when the joint run stops (another modality failed)."""


class ModalityModel:
    """What one modality's solver sees as its model: ``model(z, t)`` -> x0_hat, ``model.output(z, t)``,
    ``model.process``; each call waits for the joint call."""

    def __init__(self, name: str, process: BFNProcess, lockstep: "LockStep"):
        self.name, self.process, self._lockstep = name, process, lockstep

    def output(self, z: Tensor, t):
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        return self._lockstep.request(self.name, z, t)

    def __call__(self, z: Tensor, t) -> Tensor:
        return self.process.dist_to_x0(self.output(z, t))


class LockStep:
    """Coordinator of the modalities' solver threads (see the module docstring)."""

    def __init__(self, denoiser: JointDenoiser):
        self.denoiser = denoiser
        self.names = denoiser.joint.names
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[Tensor, Tensor]] = {}
        self._results: dict = {}
        self._done: set[str] = set()
        self._errors: dict[str, BaseException] = {}
        self._abort = False

    def request(self, name: str, z: Tensor, t: Tensor):
        with self._cond:
            if self._abort:
                raise _Aborted
            self._pending[name] = (z, t)
            self._cond.notify_all()
            self._cond.wait_for(lambda: name in self._results or self._abort)
            if self._abort:
                raise _Aborted
            return self._results.pop(name)

    def run(self, solvers: dict[str, tuple[Callable, dict]], zs: dict[str, Tensor], ts: Tensor) -> dict[str, Tensor]:
        """Final states of every modality: solvers[name] = (fn, options) integrates zs[name] over ts."""
        finals: dict[str, Tensor] = {}

        def work(name: str) -> None:
            fn, options = solvers[name]
            try:
                with torch.no_grad():
                    finals[name] = fn(ModalityModel(name, self.denoiser.joint[name], self), zs[name], ts, **options)
            except _Aborted:
                pass
            except BaseException as err:               # re-raised in the caller's thread
                self._errors[name] = err
            finally:
                with self._cond:
                    self._done.add(name)
                    self._cond.notify_all()

        threads = [threading.Thread(target=work, args=(name,), daemon=True, name=f"bfn-joint-{name}") for name in self.names]
        for thread in threads:
            thread.start()
        failure: BaseException | None = None
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._errors or len(self._pending) + len(self._done) == len(self.names))
                    if self._errors:
                        break
                    if len(self._done) == len(self.names):
                        break
                    if self._done:
                        raise ValueError(f"solver: the modalities' solvers make different numbers of network calls "
                                         f"({sorted(self._done)} finished while {sorted(self._pending)} still call); "
                                         f"combine solvers with the same calls per step")
                    calls, self._pending = self._pending, {}
                times = {name: float(t.flatten()[0]) for name, (_, t) in calls.items()}
                if max(times.values()) - min(times.values()) > 1e-12:
                    raise ValueError(f"solver: the modalities' solvers call the network at different times {times}; "
                                     f"combine solvers that evaluate at the same grid times")
                t = calls[self.names[0]][1]
                dists = self.denoiser.outputs({name: z for name, (z, _) in calls.items()}, t)
                with self._cond:
                    self._results.update(dists)
                    self._cond.notify_all()
        except BaseException as err:
            failure = err
        finally:
            with self._cond:
                self._abort = True
                self._cond.notify_all()
            for thread in threads:
                thread.join()
        if failure is not None:
            raise failure
        if self._errors:
            raise next(iter(self._errors.values()))
        return finals


def joint_reference(denoiser: JointDenoiser, zs: dict[str, Tensor], ts: Tensor, *, rtol: float = 1e-8,
                    atol: float = 1e-8, method: str = "dopri5") -> dict[str, Tensor]:
    """The joint probability-flow ODE dz_m/dt = -f_m z_m - (g_m^2 / 2)(z_m - a_m x0_hat_m) / s_m^2 for every
    modality m at once (one joint call per evaluation), by torchdiffeq's adaptive dopri5 in float64."""
    names = denoiser.joint.names
    processes = [denoiser.joint[n] for n in names]

    def velocity(t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        dists = denoiser.outputs(dict(zip(names, state)), t)
        out = []
        for name, process, y in zip(names, processes, state):
            x0 = process.dist_to_x0(dists[name])
            out.append(-process.sde_f(t) * y - 0.5 * process.sde_g2(t) * (y - process.a(t) * x0) / process.s(t) ** 2)
        return tuple(out)

    ts = ts.double()
    state = tuple(zs[n].double() for n in names)
    path = odeint(velocity, state, ts, rtol=rtol, atol=atol, method=method, options={"step_t": ts[-1:]})
    return {n: p[-1].to(zs[n].dtype) for n, p in zip(names, path)}
