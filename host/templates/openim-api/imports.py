from componentize_py_types import Err
from openim_helpers import warn
from wit_world.imports import openim_api
