# The C module under signal.py, which isol8's run path imports alone (signal.py's import wraps its
# values in enums: about 3M instructions a run). Typeshed has no stub of its own for it.
from signal import SIGINT as SIGINT
from signal import SIGKILL as SIGKILL
from signal import SIGPIPE as SIGPIPE
from signal import SIGTERM as SIGTERM
from signal import SIGXFSZ as SIGXFSZ
from signal import getsignal as getsignal
from signal import raise_signal as raise_signal
from signal import signal as signal
