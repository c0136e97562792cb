from __future__ import annotations

from pathlib import Path

import pytest

from facexpr.files import atomic_write


def test_atomic_write_replaces_the_file_whole_or_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    with atomic_write(path) as handle:
        handle.write(b"first")
        assert not path.exists()  # nothing visible under the name until the block ends
    assert path.read_bytes() == b"first"

    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write(b"half of the sec")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # the temporary file is gone

    with atomic_write(path) as handle:
        handle.write(b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]
