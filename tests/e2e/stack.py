"""The end-to-end stack: anvil + Uniswap V3 at mainnet addresses + the real Hummingbot Gateway.

Everything is built or installed into a cache directory computed at run time (``$CLMMD_E2E_CACHE``,
else ``$XDG_CACHE_HOME/clmmd-e2e``, else ``~/.cache/clmmd-e2e``) and reused while its inputs
(Gateway's tarball and patch, ``e2e/package.json``) are unchanged. :class:`Stack` starts the
processes in their own process groups and stops exactly those.

Gateway's source is not in this repository: it is looked for as ``shared/gateway-e2e/`` next to
the repository (or an ancestor folder), or wherever ``$CLMMD_GATEWAY_E2E_DIR`` points.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.chain import Chain

REPO = Path(__file__).resolve().parents[2]
E2E_NODE_DIR = REPO / "e2e"
TARBALL = "hummingbot-gateway-d2650220.tar.gz"
PATCH = "gateway-avsc-override.patch"
MIN_NODE_MAJOR = 20


class StackUnavailable(Exception):
    """The stack cannot be built here (the reason is the message; tests skip with it)."""


def cache_dir() -> Path:
    """Where built Gateway and node modules are kept between runs (never a tracked path)."""
    explicit = os.environ.get("CLMMD_E2E_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clmmd-e2e"


def shared_dir() -> Path:
    """The folder holding Gateway's tarball and patch."""
    explicit = os.environ.get("CLMMD_GATEWAY_E2E_DIR")
    candidates = [Path(explicit)] if explicit else []
    candidates += [parent / "shared" / "gateway-e2e" for parent in REPO.parents]
    for candidate in candidates:
        if (candidate / TARBALL).is_file() and (candidate / PATCH).is_file():
            return candidate
    raise StackUnavailable(
        f"Gateway's source ({TARBALL}) not found in ../shared/gateway-e2e next to the repository "
        "or $CLMMD_GATEWAY_E2E_DIR"
    )


def node_major() -> int | None:
    """Major version of ``node`` on PATH, ``None`` when there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", out.stdout.strip())
    return int(match.group(1)) if match else None


def require_node() -> None:
    """Raise :class:`StackUnavailable` unless node >= 20 and npm are installed."""
    major = node_major()
    if major is None or major < MIN_NODE_MAJOR or shutil.which("npm") is None:
        found = "no node" if major is None else f"node {major}"
        raise StackUnavailable(f"the e2e stack needs node >= {MIN_NODE_MAJOR} and npm ({found})")


def _run(cmd: list[str], **kwargs: Any) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} … failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def ensure_chain_modules(cache: Path) -> Path:
    """``node_modules`` for e2e/package.json (anvil, Uniswap artifacts, ethers, solc)."""
    manifest = (E2E_NODE_DIR / "package.json").read_bytes()
    target = cache / f"chain-{hashlib.sha256(manifest).hexdigest()[:16]}"
    if not (target / ".installed").exists():
        target.mkdir(parents=True, exist_ok=True)
        (target / "package.json").write_bytes(manifest)
        _run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=target)
        (target / ".installed").touch()
    return target / "node_modules"


def ensure_gateway(cache: Path) -> Path:
    """The built Gateway directory (built once per tarball+patch)."""
    shared = shared_dir()
    out = _run(
        [
            "bash",
            str(E2E_NODE_DIR / "build_gateway.sh"),
            str(shared / TARBALL),
            str(shared / PATCH),
            str(cache),
        ]
    )
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A child started in its own session, stopped by its process group id."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout_s)
        except ProcessLookupError:
            pass


def start(name: str, cmd: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Process(name, popen, log)


def wait_http(url: str, process: Process, timeout_s: float, body: bytes | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited: {process.log.read_text()[-2000:]}")
        try:
            request = urllib.request.Request(
                url, data=body, headers={"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer at {url} in {timeout_s:.0f}s")


@dataclass
class Deployment:
    """What e2e/deploy.js wrote: mainnet addresses of the local Uniswap V3."""

    rpc: str
    usdc: str
    weth: str
    pool: str
    position_manager: str
    swap_router: str
    deployer: str
    fee: int

    @classmethod
    def load(cls, path: Path) -> Deployment:
        raw = json.loads(path.read_text())
        return cls(
            rpc=raw["rpc"],
            usdc=raw["usdc"],
            weth=raw["weth"],
            pool=raw["pool"],
            position_manager=raw["positionManager"],
            swap_router=raw["swapRouter"],
            deployer=raw["deployer"],
            fee=int(raw["fee"]),
        )


@dataclass
class Stack:
    """A running chain + Gateway with a funded wallet; :meth:`stop` ends what it started."""

    workdir: Path
    deployment: Deployment
    chain: Chain
    gateway_url: str
    wallet: str
    processes: list[Process] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def add_wallet(self, eth: int, usdc: int, weth: int, *, default: bool = False) -> str:
        """A new funded wallet in Gateway (a fresh key made here, handed to Gateway only)."""
        status, added = self.gateway(
            "POST",
            "/wallet/add",
            {
                "chain": "ethereum",
                "privateKey": "0x" + secrets.token_hex(32),
                "setDefault": default,
            },
        )
        if status != 200:
            raise RuntimeError(f"wallet/add answered {status}: {added}")
        address = str(added["address"])
        if eth or usdc or weth:
            self.chain.fund(address, self.deployment.deployer, eth, usdc, weth)
        return address

    def gateway(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One Gateway request; returns (status, parsed body)."""
        return http_json(self.gateway_url, method, path, body)


def http_json(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One JSON request; (status, parsed body) whatever the status. A GET's body is its query."""
    if method == "GET" and body:
        path, body = path + "?" + urllib.parse.urlencode(body), None
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"content-type": "application/json"} if body is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def configure_gateway(gateway_dir: Path, run_dir: Path, rpc: str, port: int) -> None:
    """A per-run Gateway root: its own conf/ (from the build's template), the build's dist/."""
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(gateway_dir / "conf.template", run_dir / "conf")
    (run_dir / "dist").symlink_to(gateway_dir / "dist")
    conf = run_dir / "conf"
    _edit(conf / "server.yml", r"(?m)^port:.*$", f"port: {port}")
    _edit(conf / "chains/ethereum/mainnet.yml", r"(?m)^nodeURL:.*$", f"nodeURL: {rpc}")
    _edit(
        conf / "chains/ethereum.yml",
        r"(?ms)^defaultNetworks:\n(  - .*\n)+",
        "defaultNetworks:\n  - mainnet\n",
    )


def _edit(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text())
    if count != 1:
        raise RuntimeError(f"{path.name}: expected one match of {pattern!r}, found {count}")
    path.write_text(text)


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Build what is missing, start anvil and Gateway, fund a fresh wallet; stop at exit."""
    require_node()
    cache = cache_dir()
    modules = ensure_chain_modules(cache)
    gateway_dir = ensure_gateway(cache)
    processes: list[Process] = []
    try:
        rpc_port = free_port()
        anvil = start(
            "anvil",
            [
                str(modules / "@foundry-rs/anvil-linux-amd64/bin/anvil"),
                "--host",
                "127.0.0.1",
                "--port",
                str(rpc_port),
                "--chain-id",
                "1",
                "--silent",
            ],
            workdir,
        )
        processes.append(anvil)
        rpc = f"http://127.0.0.1:{rpc_port}"
        probe = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
        wait_http(rpc, anvil, 30, probe)
        deployment_file = workdir / "deployment.json"
        _run(
            ["node", str(E2E_NODE_DIR / "deploy.js"), rpc, str(deployment_file)],
            env={**os.environ, "NODE_PATH": str(modules)},
        )
        deployment = Deployment.load(deployment_file)
        chain = Chain(rpc, deployment.usdc, deployment.weth, deployment.position_manager)
        gw_port = free_port()
        gw_root = workdir / "gateway"
        configure_gateway(gateway_dir, gw_root, rpc, gw_port)
        gateway = start(
            "gateway",
            ["node", str(gw_root / "dist" / "index.js"), "--dev"],
            gw_root,
            {"GATEWAY_PASSPHRASE": secrets.token_hex(16), "START_SERVER": "true"},
        )
        processes.append(gateway)
        url = f"http://127.0.0.1:{gw_port}"
        wait_http(url + "/", gateway, 90)
        stack = Stack(workdir, deployment, chain, url, "", processes)
        stack.wallet = stack.add_wallet(0, 0, 0, default=True)
        yield stack
    finally:
        for process in reversed(processes):
            process.stop()
