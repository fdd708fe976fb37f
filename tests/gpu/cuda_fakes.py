"""Faithful fakes for the contract tests: ``pycuda.driver`` here (``cuda.bindings.runtime`` and
``cuda.bindings.driver`` are in cuda_bindings_fakes.py): the same names, signatures and return shapes,
per-thread context state, a fake device heap so copies round-trip, and a call log of (thread id, call
name) to check order and threads.

What they reproduce from PyCUDA (brief §2): ``LogicError: ... no currently active context?`` for a
context-dependent call on a thread with an empty context stack, and a ``detach()`` that does nothing
on a thread other than the creator.
"""

import itertools
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def run_in_thread(fn):
    """Run fn on a new thread; return (its result, its thread id), re-raising its exception here."""
    box = {}

    def target():
        box["thread"] = threading.get_ident()
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - carried to the test thread
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("result"), box["thread"]


class DeviceHeap:
    """Fake device memory: allocations at fake addresses, byte-exact reads and writes."""

    def __init__(self) -> None:
        self.blocks: Dict[int, bytearray] = {}
        self._next = 0x7F0000000000

    def alloc(self, nbytes: int) -> int:
        ptr = self._next
        self._next += (nbytes + 511) // 256 * 256
        self.blocks[ptr] = bytearray(nbytes)
        return ptr

    def free(self, ptr: int) -> None:
        del self.blocks[ptr]

    def _find(self, ptr: int, nbytes: int) -> Tuple[bytearray, int]:
        for base, block in self.blocks.items():
            if base <= ptr and ptr + nbytes <= base + len(block):
                return block, ptr - base
        raise IndexError(f"fake device: {nbytes} bytes at {ptr:#x} are not allocated")

    def write(self, ptr: int, data: bytes) -> None:
        block, offset = self._find(ptr, len(data))
        block[offset:offset + len(data)] = data

    def read(self, ptr: int, nbytes: int) -> bytes:
        block, offset = self._find(ptr, nbytes)
        return bytes(block[offset:offset + nbytes])


class CallLog:
    """(thread id, call name, args) of every call, in order."""

    def __init__(self) -> None:
        self.calls: List[Tuple[int, str, tuple]] = []

    def add(self, name: str, *args: Any) -> None:
        self.calls.append((threading.get_ident(), name, args))

    def names(self, thread: Optional[int] = None) -> List[str]:
        return [name for ident, name, _ in self.calls if thread is None or ident == thread]


# --------------------------------------------------------------------------------------- pycuda.driver


class FakePycudaDriver:
    """Stands in for the ``pycuda.driver`` module (an instance, so each test gets fresh state)."""

    def __init__(self, devices: int = 1, init_error: Optional[str] = None, integrated: bool = False) -> None:
        self.log, self.heap = CallLog(), DeviceHeap()
        self._local = threading.local()
        self._devices, self._init_error, self._integrated = devices, init_error, integrated
        self.released: List[Any] = []
        fake = self

        class Error(Exception):
            pass

        class LogicError(Error):
            pass

        class Context:
            def __init__(self, device: int) -> None:
                self.device, self.creator, self.valid = device, threading.get_ident(), True

            def push(self) -> None:
                fake.log.add("Context.push")
                fake.stack().append(self)

            @staticmethod
            def pop() -> None:
                fake.log.add("Context.pop")
                if not fake.stack():
                    raise LogicError("cuCtxPopCurrent failed: invalid device context")
                fake.stack().pop()

            @staticmethod
            def get_current() -> Any:
                return fake.stack()[-1] if fake.stack() else None

            def detach(self) -> None:
                fake.log.add("Context.detach")
                if threading.get_ident() != self.creator:
                    return  # PyCUDA: "this context has already been deleted ... No need to harp"
                if self.valid:
                    self.valid = False
                    fake.released.append(self)
                    if fake.stack() and fake.stack()[-1] is self:
                        fake.stack().pop()

        class Device:
            def __init__(self, index: int) -> None:
                fake.log.add("Device", index)
                self.index = index

            @staticmethod
            def count() -> int:
                fake.log.add("Device.count")
                return fake._devices

            def name(self) -> str:
                return "Fake GPU"

            def compute_capability(self) -> Tuple[int, int]:
                return (8, 7)

            def total_memory(self) -> int:
                return 8 << 30

            def get_attribute(self, attribute: Any) -> int:
                return int(fake._integrated) if attribute == "INTEGRATED" else 0

            def retain_primary_context(self) -> Any:
                fake.log.add("Device.retain_primary_context")
                return Context(self.index)

        class HostAllocation(bytearray):
            def __init__(self, nbytes: int, flags: int) -> None:
                super().__init__(nbytes)
                self.flags, self.freed = flags, False

            def free(self) -> None:
                fake.log.add("HostAllocation.free")
                self.freed = True

            def get_device_pointer(self) -> int:
                fake.log.add("HostAllocation.get_device_pointer")
                if not self.flags & fake.host_alloc_flags.DEVICEMAP:
                    raise LogicError("cuMemHostGetDevicePointer failed: invalid value")
                return 0x600000000000 + id(self) % 0x100000

        class DeviceAllocation:
            def __init__(self, nbytes: int) -> None:
                self.ptr = fake.heap.alloc(nbytes)

            def __int__(self) -> int:
                return self.ptr

            def free(self) -> None:
                fake.log.add("DeviceAllocation.free")
                fake.require_context("cuMemFree")
                fake.heap.free(self.ptr)

        class Stream:
            _handles = itertools.count(0x5000)

            def __init__(self, flags: int = 0) -> None:
                fake.log.add("Stream", flags)
                fake.require_context("cuStreamCreate")
                self.flags, self.handle = flags, next(Stream._handles)

            def synchronize(self) -> None:
                fake.log.add("Stream.synchronize")
                fake.require_context("cuStreamSynchronize")

        class _Flags:
            DEVICEMAP = 2
            PORTABLE = 1

        class _Attributes:
            INTEGRATED = "INTEGRATED"

        self.Error, self.LogicError, self.Context, self.Device = Error, LogicError, Context, Device
        self.Stream, self.HostAllocation, self.DeviceAllocation = Stream, HostAllocation, DeviceAllocation
        self.host_alloc_flags, self.device_attribute = _Flags, _Attributes

    def stack(self) -> List[Any]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def require_context(self, call: str) -> None:
        if not self.stack():
            raise self.LogicError(f"{call} failed: explicit_context_dependent failed: invalid device context - "
                                  "no currently active context?")

    def init(self, flags: int = 0) -> None:
        self.log.add("init")
        if self._init_error:
            raise self.Error(self._init_error)

    def mem_alloc(self, nbytes: int) -> Any:
        self.log.add("mem_alloc", nbytes)
        self.require_context("cuMemAlloc")
        return self.DeviceAllocation(nbytes)

    def pagelocked_empty(self, shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> np.ndarray:
        self.log.add("pagelocked_empty", shape, mem_flags)
        self.require_context("cuMemHostAlloc")
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        memory = self.HostAllocation(max(1, int(np.prod(shape)) * dtype.itemsize), mem_flags)
        return np.ndarray(shape, dtype, buffer=memory, order=order)

    def memcpy_htod_async(self, dest: Any, src: np.ndarray, stream: Any = None) -> None:
        self.log.add("memcpy_htod_async", int(dest), stream)
        self.require_context("cuMemcpyHtoDAsync")
        self.heap.write(int(dest), src.tobytes())

    def memcpy_dtoh_async(self, dest: np.ndarray, src: Any, stream: Any = None) -> None:
        self.log.add("memcpy_dtoh_async", int(src), stream)
        self.require_context("cuMemcpyDtoHAsync")
        dest[...] = np.frombuffer(self.heap.read(int(src), dest.nbytes), dest.dtype).reshape(dest.shape)
