"""JSON request parsing that refuses what would otherwise reach the code as a 500. (Body size
is checked earlier, from the headers: mail/api/middleware.py.)"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_lone_surrogate(value) -> bool:
    # JSON may spell half a UTF-16 pair ("\ud800"); such a string cannot be stored or sent.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
        if _has_lone_surrogate(data):
            raise ParseError("JSON parse error - a string contains an unpaired UTF-16 surrogate.")
        return data
