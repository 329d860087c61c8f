"""The record of a server session in its standby container, and the one script that keeps it.

Pure, like argv.py: the script is a constant, its arguments isol8's own."""

from __future__ import annotations

from collections.abc import Sequence

from isol8.backends.engine.dialect import Dialect
from isol8.core.sandbox import CONTROL_DIR

# A server session's record in its standby container (CONTROL_DIR, root's alone), kept by root
# execs so that any replica sharing the engine can take a turn in it: `turn` (a directory:
# mkdir is the lock) holds its holder's token and the end of its lease, after which another
# may break it; every verb but status holds `lock` (flock: a killed exec lets go of it);
# `used` is the engine clock's time of the last turn's end; `state` is what the server saved
# (its run-time packages, as JSON). Its arguments are isol8's own (a verb, hex
# tokens, whole seconds), never a request's; the session's programs cannot reach any of it.
SESSION_CONTROL = r"""
set -f
d=@DIR@
clock() { printf -v now '%(%s)T' -1; }
take() {
  clock
  if ! mkdir "$d/turn" 2>/dev/null; then
    local ends= held=
    read -r held 2>/dev/null <"$d/turn/token"
    if [ "$held" != "$1" ]; then  # its own claim again (an answer lost on the way) keeps it
      read -r ends 2>/dev/null <"$d/turn/until"
      [ -n "$ends" ] || ends=$(( $(stat -c %Y "$d/turn" 2>/dev/null || echo "$now") + 60 ))
      (( now > ends )) || return 1
      rm -rf "$d/turn" && mkdir "$d/turn" 2>/dev/null || return 1
    fi
  fi
  printf '%s\n' "$1" >"$d/turn/token" && printf '%s\n' $(( now + $2 )) >"$d/turn/until"
}
mine() { local t=; read -r t 2>/dev/null <"$d/turn/token"; [ "$t" = "$1" ] || { echo "turn lost" >&2; exit 4; }; }
if [ "$1" != status ]; then  # one verb at a time: two replicas never both break a stale turn
  exec 9>"$d/lock" && flock -w 10 9 || { echo "record locked" >&2; exit 5; }
fi
case $1 in
claim)
  take "$2" "$3" || { echo "session busy" >&2; exit 3; }
  cat "$d/state" 2>/dev/null; exit 0 ;;
save) mine "$2"; cat >"$d/state.new" && mv -f "$d/state.new" "$d/state" ;;
release)
  mine "$2"
  [ "$3" != 1 ] || kill -KILL -1 2>/dev/null || :
  clock; printf '%s\n' "$now" >"$d/used" && rm -rf "$d/turn" ;;
expire)
  take "expire-$$" 60 || { echo busy; exit 0; }
  used=; read -r used 2>/dev/null <"$d/used"
  [ -n "$used" ] || { used=$now; printf '%s\n' "$now" >"$d/used"; }
  if (( now - used > $2 )); then echo expired; else rm -rf "$d/turn"; echo fresh; fi ;;
status)
  clock; busy=0; [ ! -d "$d/turn" ] || busy=1; used=; read -r used 2>/dev/null <"$d/used"
  echo "$busy ${used:-$now} $now"; cat "$d/state" 2>/dev/null; exit 0 ;;
*) exit 2 ;;
esac
""".replace("@DIR@", CONTROL_DIR)


def session_control_argv(d: Dialect, *, name: str, verb: str, args: Sequence[str] = ()) -> list[str]:
    """`exec -i` as root of one SESSION_CONTROL verb in a standby container:
    - claim TOKEN LEASE_S: take the turn if it is free (else exit 3: the caller waits outside,
      where no other turn's sweep ends it), print the state;
    - save TOKEN: the state from stdin;
    - release TOKEN SWEEP: with SWEEP 1, end every process but PID 1 (the sandbox user can neither
      stop nor read a root process: unlike the wrapper's own `kill -KILL -1`, which a program may
      disturb, this holds), then note the use and give the turn back;
    - expire IDLE_S: print expired (keeping the turn), or fresh, or busy;
    - status: print BUSY USED NOW (engine clock seconds), then the state."""
    return [*d.cli, "exec", "-i", "--user", "0:0", name, "/bin/bash", "-c", SESSION_CONTROL, "isol8", verb, *args]
