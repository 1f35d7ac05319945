"""Regenerate ``snakepit_bridge/proto/`` from ``protos/`` (``make proto``).

Needs the pinned ``grpcio-tools`` (test extra). ``generate(out_dir)`` writes the generated
modules and a copy of the .proto (shipped in the package for non-Python workers) under
``out_dir/snakepit_bridge/proto/``; the regeneration test compares that with the committed code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO = Path("snakepit_bridge/proto/bridge.proto")
GENERATED = ("bridge_pb2.py", "bridge_pb2.pyi", "bridge_pb2_grpc.py", "bridge.proto",
             "bridge.desc")


def generate(out_dir: Path) -> Path:
    from grpc_tools import protoc  # only needed here

    target = out_dir / PROTO.parent
    target.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    shutil.copyfile(PROTO_ROOT / PROTO, target / PROTO.name)
    # The serialized FileDescriptorProto, for runtimes that load descriptors at run time
    # (the Ruby worker: Debian's ruby-grpc has no code generator we can rely on).
    from google.protobuf import descriptor_pb2
    set_path = out_dir / "bridge.descset"
    if protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--descriptor_set_out={set_path}",
                    str(PROTO_ROOT / PROTO)]) != 0:
        raise RuntimeError("protoc --descriptor_set_out failed")
    fds = descriptor_pb2.FileDescriptorSet.FromString(set_path.read_bytes())
    set_path.unlink()
    (target / "bridge.desc").write_bytes(fds.file[0].SerializeToString(deterministic=True))
    return target


def main() -> int:
    target = generate(ROOT)
    print(f"regenerated {', '.join(GENERATED)} in {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
