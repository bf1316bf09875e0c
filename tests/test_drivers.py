"""Which `.icd` files fusec hands the OpenCL loader, without loading any driver."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fusec.runtime import drivers


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine with no pip driver, an empty /etc/OpenCL/vendors and a fake Oclgrind library."""
    vendors, lib = tmp_path / "vendors", tmp_path / "oclgrind" / "liboclgrind-rt-icd.so"
    vendors.mkdir()
    lib.parent.mkdir()
    lib.write_bytes(b"")
    # set, then removed: either way the session's own value comes back afterwards
    monkeypatch.setenv("OCL_ICD_VENDORS", "")
    monkeypatch.delenv("OCL_ICD_VENDORS")
    monkeypatch.setattr(drivers, "SYSTEM_VENDORS", vendors)
    monkeypatch.setattr(drivers, "PIP_DRIVERS", ())
    monkeypatch.setattr(drivers, "OCLGRIND_LIBRARIES", (str(tmp_path / "nowhere.so"), str(lib)))
    monkeypatch.setattr(drivers.platformdirs, "user_cache_dir", lambda app: str(tmp_path / "cache"))
    return vendors, lib


def icd_files(directory: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(Path(directory).iterdir())}


def test_oclgrind_is_registered_beside_the_systems_drivers(machine):
    vendors, lib = machine
    (vendors / "intel.icd").write_text("/opt/intel/libintelocl.so\n")
    directory = drivers.register_pip_drivers()
    assert icd_files(directory) == {
        "oclgrind.icd": f"{lib}\n",
        "intel.icd": "/opt/intel/libintelocl.so\n",
    }
    assert drivers.os.environ["OCL_ICD_VENDORS"] == directory


def test_oclgrind_already_registered_by_the_system_is_not_registered_twice(machine):
    vendors, lib = machine
    (vendors / "oclgrind-rt.icd").write_text(f"{lib}\n")
    assert drivers.register_pip_drivers() is None  # the loader finds it alone
    assert "OCL_ICD_VENDORS" not in drivers.os.environ


def test_nothing_to_add_leaves_the_loader_alone(machine, monkeypatch):
    monkeypatch.setattr(drivers, "OCLGRIND_LIBRARIES", ())
    assert drivers.register_pip_drivers() is None
    assert "OCL_ICD_VENDORS" not in drivers.os.environ


def test_a_users_own_ocl_icd_vendors_wins(machine, monkeypatch):
    monkeypatch.setenv("OCL_ICD_VENDORS", "/somewhere")
    assert drivers.register_pip_drivers() is None
    assert drivers.os.environ["OCL_ICD_VENDORS"] == "/somewhere"


def fake(platform: str, name: str, type_bits: int):
    dev = SimpleNamespace(
        name=name, type=type_bits, version="OpenCL 1.2", platform=SimpleNamespace(name=platform)
    )
    return dev.platform, dev


def test_a_simulator_is_the_default_device_only_when_it_is_all_there_is(monkeypatch):
    from fusec.runtime import programs

    oclgrind = fake("Oclgrind", "Oclgrind Simulator", 15)  # every type bit, GPU included
    intel = fake("Intel(R) OpenCL", "AMD EPYC", 2)
    monkeypatch.setattr(programs, "list_devices", lambda: [oclgrind, intel])
    assert programs.select_device("") is intel[1]
    assert programs.select_device("oclgrind") is oclgrind[1]
    monkeypatch.setattr(programs, "list_devices", lambda: [oclgrind])
    assert programs.select_device("") is oclgrind[1]
