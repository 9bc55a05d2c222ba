"""What runs on a board: the POSIX sh scripts that start, inspect and stop a
run's agents, and the parsing of their answers (pure: strings in, strings out).

A run's directory on a host (`<remote_dir>/runs/<run id>/`):
    config/<agent>.json   pushed by the orchestrator
    logs/<agent>.log      stdout and stderr of the agent
    out/<agent>/          the agent's output folder
    pids/<agent>.pid      "<pid> <start time>" of the agent's session leader
    pids/<agent>.exit     its exit code, written when it ends

Each agent runs in its own session (setsid) under a small sh wrapper whose pid
is the session and process-group id: a stop signals the whole group, and the
wrapper records the agent's exit status. The start time (field 22 of
/proc/<pid>/stat) guards against signalling a reused pid.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.backends.base import UnitState

# the wrapper: ignores HUP, defers TERM/INT until the agent (which gets them
# through its process group) has ended, then records its status
_WRAPPER = (
    'echo "$$ $(cut -d" " -f22 /proc/$$/stat)" > "pids/$0.pid.tmp" && mv "pids/$0.pid.tmp" '
    '"pids/$0.pid"; trap "" HUP; trap : TERM INT; "$@" </dev/null >>"logs/$0.log" 2>&1; '
    'echo $? > "pids/$0.exit.tmp"; mv "pids/$0.exit.tmp" "pids/$0.exit"'
)


def remote_path(home: str, remote_dir: str, *parts: str) -> str:
    """An absolute path under the host's remote_dir (relative to its home unless absolute)."""
    base = remote_dir if remote_dir.startswith("/") else f"{home.rstrip('/')}/{remote_dir}"
    return "/".join([base.rstrip("/"), *parts])


def q(value: str) -> str:
    return shlex.quote(value)


def start_script(
    run_dir: str, name: str, argv: Sequence[str], env: Mapping[str, str], wait_seconds: float = 10
) -> str:
    """Start agent `name` in the background; prints its pid once recorded."""
    env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
    command = " ".join(q(a) for a in argv)
    tries = max(1, int(wait_seconds * 10))
    return f"""set -e
cd {q(run_dir)}
mkdir -p pids logs out/{q(name)}
rm -f pids/{q(name)}.pid pids/{q(name)}.exit
setsid sh -c {q(_WRAPPER)} {q(name)} env {env_args} {command} </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s pids/{q(name)}.pid ] && [ $i -lt {tries} ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -s pids/{q(name)}.pid ]; then echo "agent {name} did not start" >&2; exit 1; fi
cut -d' ' -f1 pids/{q(name)}.pid
"""


# One line per agent recorded in the run directory:
#   <name> running <pid> <rss kB> | <name> exited <pid> <code> | <name> missing <pid>
STATUS_SCRIPT = r"""cd "$1" 2>/dev/null || { echo "end of status"; exit 0; }
for f in pids/*.pid; do
  [ -e "$f" ] || continue
  n=${f#pids/}; n=${n%.pid}
  set -- $(cat "$f") 0 0
  pid=$1; start=$2
  if [ -f "pids/$n.exit" ]; then echo "$n exited $pid $(cat "pids/$n.exit")"; continue; fi
  now=$(cut -d' ' -f22 /proc/$pid/stat 2>/dev/null || true)
  if [ "$now" = "$start" ]; then
    rss=0
    for c in $pid $(cat /proc/$pid/task/$pid/children 2>/dev/null); do
      r=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' /proc/$c/status 2>/dev/null)
      rss=$((rss + ${r:-0}))
    done
    echo "$n running $pid $rss"
  elif [ -f "pids/$n.exit" ]; then
    echo "$n exited $pid $(cat "pids/$n.exit")"  # it ended between the two checks
  else
    echo "$n missing $pid"
  fi
done
echo "end of status"
"""


def status_command(run_dir: str) -> str:
    return f"sh -c {q(STATUS_SCRIPT)} status {q(run_dir)}"


@dataclass(frozen=True, slots=True)
class RemoteState:
    name: str
    state: UnitState
    pid: int | None = None
    returncode: int | None = None
    rss_bytes: int | None = None


def exit_code(shell_code: int) -> int:
    """A shell's 128 + n (agent killed by signal n) as a process's -n."""
    if 128 < shell_code <= 128 + 64:
        return -(shell_code - 128)
    return shell_code


class IncompleteStatus(ValueError):
    """The status script's answer ended early (the host went away)."""


def parse_status(text: str) -> dict[str, RemoteState]:
    lines = text.splitlines()
    if "end of status" not in lines:
        raise IncompleteStatus(f"incomplete status answer: {text[-200:]!r}")
    out: dict[str, RemoteState] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        name, state = parts[0], parts[1]
        if not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if state == "running":
            rss = int(parts[3]) * 1024 if len(parts) > 3 else None
            out[name] = RemoteState(name, "running", pid, None, rss)
        elif state == "exited":
            code = (
                exit_code(int(parts[3]))
                if len(parts) > 3 and parts[3].lstrip("-").isdigit()
                else None
            )
            out[name] = RemoteState(name, "exited", pid, code)
        else:
            out[name] = RemoteState(name, "missing", pid)
    return out


def signal_script(run_dir: str, names: Iterable[str], signal: str) -> str:
    """Send `signal` to the process group of each named, still-running agent."""
    lines = [f"cd {q(run_dir)} 2>/dev/null || exit 0"]
    for name in names:
        pidfile = f"pids/{name}.pid"
        lines.append(
            f"if [ -f {q(pidfile)} ] && [ ! -f {q(f'pids/{name}.exit')} ]; then "
            f"set -- $(cat {q(pidfile)}) 0 0; "
            f'[ "$(cut -d" " -f22 /proc/$1/stat 2>/dev/null)" = "$2" ] && '
            f"kill -{signal} -$1 2>/dev/null || true; fi"
        )
    return "\n".join(lines) + "\n"


def kill_all_script(run_dir: str) -> str:
    """SIGTERM every recorded agent of the run, SIGKILL after 5 s, remove the run
    directory (the `testbed clean` path for a run whose orchestrator died)."""
    return f"""cd {q(run_dir)} 2>/dev/null || exit 0
alive() {{ set -- $(cat "$1") 0 0; [ "$(cut -d' ' -f22 /proc/$1/stat 2>/dev/null)" = "$2" ]; }}
signal() {{
  for f in pids/*.pid; do
    [ -e "$f" ] && alive "$f" || continue
    pid=$(cut -d' ' -f1 "$f")
    kill -$1 -$pid 2>/dev/null && echo "$2 $f"
  done
}}
signal TERM term
i=0
while [ $i -lt 50 ]; do
  left=0
  for f in pids/*.pid; do [ -e "$f" ] && alive "$f" && left=1; done
  [ $left = 0 ] && break
  sleep 0.1; i=$((i + 1))
done
signal KILL kill
cd / && rm -rf {q(run_dir)}
true
"""
