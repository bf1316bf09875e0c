"""OpenCL: devices and drivers, building through the kernel cache (in a worker
process), and launching. The only part of fusec that imports pyopencl, and
only when something here is used: `fusec.compile_graphs` runs without it."""

_EXPORTS = (
    "DeviceError",
    "Runtime",
    "broken_reason",
    "is_simulator",
    "list_devices",
    "select_device",
)


def __getattr__(name: str):
    if name in _EXPORTS:
        from . import programs

        return getattr(programs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
