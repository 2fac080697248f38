"""A single-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd under one folder.

``LocalSlurm(folder).start()`` writes ``slurm.conf`` (this machine as its only node, with the CPUs and
memory ``slurmd -C`` reports, one partition, ``proctrack/linuxproc`` and no cgroups, so it runs in a
container without a cgroup hierarchy), a fresh munge key, starts the three daemons as the current user
(root here), and waits until ``sinfo`` shows the node idle. ``stop()`` kills them and removes nothing but
their processes: the folder keeps the logs a failing test is read from. Nothing is written outside the
folder, and the daemons listen on free ports, so a second cluster (or a system one) does not collide.

What differs from a site's cluster, and why (docs/slurm.md says what a site sets instead):

- ``AuthInfo=cred_expire=5``: SLURM holds a requeued job for ``cred_expire`` seconds (default 120) before
  it may start again; 5 is the minimum and keeps a requeue test at seconds, not minutes.
- ``KillWait=5``: the seconds between SIGTERM and SIGKILL when a job is requeued or cancelled (default 30).
- No accounting database (``slurmdbd`` needs MariaDB): ``sacct``, which submitit asks for job states, is
  answered by a shim in ``<folder>/bin`` that reads the controller's own job table (``squeue``), so the
  states submitit reads back are the controller's.

``python tests/slurm_cluster.py up FOLDER`` starts one by hand (``down FOLDER`` stops it); ``eval`` the
``export`` lines it prints to use ``sbatch`` and friends against it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
DAEMONS = ("munged", "slurmctld", "slurmd", "slurmstepd")
PARTITION = "debug"
MAX_ARRAY_SIZE = 2  # small on purpose: the runner must size its arrays to the cluster's limit, not to its own

# What submitit's sacct call gets here: JobID|State|NodeList for the job ids it asks about, from squeue,
# which keeps finished jobs for MinJobAge seconds. squeue prints array tasks as <job>_<task>, as sacct does;
# a task squeue no longer knows is left out, as sacct leaves out a job id it does not know.
SACCT_SHIM = """#!/bin/sh
ids=""
while [ $# -gt 0 ]; do
  case "$1" in -j) ids="$ids${ids:+,}$2"; shift 2;; *) shift;; esac
done
echo "JobID|State|NodeList"
[ -n "$ids" ] || exit 0
exec squeue --noheader --array --states=all --jobs="$ids" --format="%i|%T|%N"
"""


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the cluster; the message says why (the tests skip with it)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """This machine's ``NodeName=... CPUs=... RealMemory=...`` as slurmd itself measures it: a node declared
    with more than it has is drained as invalid; one declared with less wastes nothing a test needs."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("NodeName=")), None)
    if out.returncode or line is None:
        raise SlurmUnavailable(f"slurmd -C could not describe this machine: {out.stderr.strip() or out.stdout}")
    return line


class LocalSlurm:
    """One node, one partition (``debug``), on localhost; see the module docstring."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).resolve()
        self.conf = self.folder / "etc" / "slurm.conf"
        self.bin = self.folder / "bin"
        self.procs: dict[str, subprocess.Popen] = {}
        self.node = ""

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to talk to this cluster: its slurm.conf, and the sacct shim first on PATH."""
        return {"SLURM_CONF": str(self.conf), "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check,
                              env={**os.environ, **self.env})

    def write_config(self) -> None:
        if missing := [b for b in BINARIES if shutil.which(b) is None]:
            raise SlurmUnavailable(f"SLURM is not installed (missing {', '.join(missing)}): "
                                   f"apt-get install slurmctld slurmd slurm-client munge")
        if os.geteuid() != 0:
            raise SlurmUnavailable("the test cluster runs its daemons as root (slurmd starts jobs as their user); "
                                   "run the tests as root, or point them at a site's cluster")
        node = _node_line()
        # slurmd names itself after the short hostname; the controller must carry that name too
        self.node = socket.gethostname().split(".")[0]
        node = node.split(None, 1)[1]  # drop the NodeName= slurmd -C guessed; ours follows
        for sub in ("etc", "state", "spool", "log", "run", "munge", "bin"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        f = self.folder
        # munge wants its key readable by its user only, and its folders not writable by others
        os.chmod(f / "munge", 0o700)
        key = f / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(128))
        os.chmod(key, 0o400)
        self.conf.write_text("\n".join([
            "ClusterName=vpcosttest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={f / 'munge' / 'munge.socket'},cred_expire=5",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",  # no cgroup hierarchy needed (a site uses proctrack/cgroup)
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "LaunchParameters=use_interactive_step",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1,sched_min_interval=100000",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",  # two one-core jobs side by side on two cores
            "ReturnToService=2",
            "KillWait=5",
            "MinJobAge=600",  # squeue (and so the sacct shim) keeps finished jobs this long
            f"MaxArraySize={MAX_ARRAY_SIZE}",
            "JobRequeue=1",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "Waittime=0",
            f"NodeName={self.node} NodeAddr=127.0.0.1 {node} State=UNKNOWN",
            # FORCE:2: two jobs per core, so that two arrays over one store really run side by side on 2 cores
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=60 OverSubscribe=FORCE:2 State=UP",
            "",
        ]))
        shim = self.bin / "sacct"
        shim.write_text(SACCT_SHIM)
        shim.chmod(0o755)

    def _spawn(self, name: str, *cmd: str) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")  # noqa: SIM115 (kept open for the daemon's life)
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                            start_new_session=True)

    def _wait(self, what: str, ok, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with {proc.returncode} while waiting for {what}: "
                                           f"{self._tail(name)}")
            if ok():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.folder / 'log'}")

    def _tail(self, name: str) -> str:
        text = ""
        for path in (self.folder / "log" / f"{name}.out", self.folder / "log" / f"{name}.log"):
            if path.exists():
                text += path.read_text(errors="replace")[-1500:]
        return text.strip()

    def start(self, timeout: float = 60) -> LocalSlurm:
        self.write_config()
        f = self.folder
        sock = f / "munge" / "munge.socket"
        # --force: munged refuses to run as root, and to use a key in a folder it did not create, without it
        self._spawn("munged", "munged", "--foreground", "--force", f"--socket={sock}",
                    f"--key-file={f / 'munge' / 'munge.key'}", f"--pid-file={f / 'run' / 'munged.pid'}",
                    f"--log-file={f / 'log' / 'munged.log'}", f"--seed-file={f / 'munge' / 'munged.seed'}")
        self._wait("munged's socket", sock.exists, 20)
        # -D: in the foreground, so the Popen is the daemon and stop() kills exactly it; -i: ignore state
        # left by an earlier run of this folder
        self._spawn("slurmctld", "slurmctld", "-D", "-i", "-f", str(self.conf))
        self._wait("slurmctld to answer", lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout)
        self._spawn("slurmd", "slurmd", "-D", "-N", self.node, "-f", str(self.conf))
        self._wait(f"node {self.node} to be idle in sinfo", self._node_idle, timeout)
        return self

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%N %t", check=False).stdout.split()
        return len(out) >= 2 and out[1] == "idle"

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (in that order), each by its own pid."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user", str(os.geteuid()), check=False)  # job steps are slurmd's children
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._kill_strays()

    def _kill_strays(self) -> None:
        """A job step slurmd started outlives slurmd (slurmstepd is its own session): kill every process whose
        environment names this cluster's slurm.conf, so no test leaves a job running."""
        needle = f"SLURM_CONF={self.conf}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            variables = environ.split(b"\0")
            if needle not in variables:
                continue
            try:
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue
            # a job's processes carry SLURM_JOB_ID; slurmstepd and the daemons are named: never the shell or
            # test process that merely exported SLURM_CONF
            if comm in DAEMONS or any(v.startswith(b"SLURM_JOB_ID=") for v in variables):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python tests/slurm_cluster.py up|down FOLDER", file=sys.stderr)
        return 2
    cluster = LocalSlurm(argv[1])
    if argv[0] == "down":
        for name in ("slurmd", "slurmctld", "munged"):
            pid = cluster.folder / "run" / f"{name}.pid"
            if pid.exists():
                try:
                    os.kill(int(pid.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        cluster._kill_strays()
        return 0
    try:
        cluster.start()
    except SlurmUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    for key, value in cluster.env.items():
        print(f"export {key}={value}")
    for proc in cluster.procs.values():  # leave them running: detach from this process
        proc.returncode = 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
