"""``python -m rtctl.server``: run the daemon from environment and config file alone."""

from rtctl.config import load_settings
from rtctl.server.run import serve

serve(load_settings())
