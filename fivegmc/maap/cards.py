"""Bounds validation of chatbot cards and suggestions (GSMA chatbot-message JSON Schema).

The bounds are those of the GSMA chatbot-message schema (draft-04, id
``http://www.gsma.com/rcs/chatbot_message_schema.json``) as digested in protocols.md §10:
chips 1–11; card title 1–200 and description 1–2000 characters; font styles 1–3 of
italics/bold/underline; 1–4 suggestions per card; carousels of 2–12 cards; postback ``data``
≤ 2048; ``displayText`` 1–25; ``contentDescription`` ≤ 200; enriched-call ``subject`` ≤ 60;
location ``label`` ≤ 100; small-width carousel cards only short or medium media heights.
Card structure and action types follow protocols.md §1 (NODE) and §3.

Pure functions over decoded JSON (``dict``/``list``/scalars); every problem is one string that
names its JSON path, e.g. ``RCSMessage.richcardMessage.message.generalPurposeCardCarousel.
content[3].title: longer than 200``. Unknown members are tolerated (China extensions and newer
schema versions add some); only known members are checked. Shared by the GSMA and CT/CU
dialects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MAX_CHIPS = 11
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_CARD_SUGGESTIONS = 4
MIN_CAROUSEL, MAX_CAROUSEL = 2, 12
MAX_POSTBACK = 2048
MAX_DISPLAY_TEXT = 25
MAX_CONTENT_DESCRIPTION = 200
MAX_SUBJECT = 60
MAX_LABEL = 100
#: Generous bounds the schema leaves open: URLs and free text in actions.
MAX_URL = 2048
MAX_TEXT = 2000

ORIENTATIONS = ("VERTICAL", "HORIZONTAL")
ALIGNMENTS = ("LEFT", "RIGHT")
WIDTHS = ("SMALL_WIDTH", "MEDIUM_WIDTH")
HEIGHTS = ("SHORT_HEIGHT", "MEDIUM_HEIGHT", "TALL_HEIGHT")
SMALL_WIDTH_HEIGHTS = ("SHORT_HEIGHT", "MEDIUM_HEIGHT")
FONT_STYLES = ("italics", "bold", "underline")
RECORDING_TYPES = ("AUDIO", "VIDEO")

Errors = list[str]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _object(value: Any, path: str, errors: Errors) -> Mapping[str, Any] | None:
    if isinstance(value, dict):
        return value
    errors.append(f"{path}: expected object, got {_type_name(value)}")
    return None


def _string(obj: Mapping[str, Any], key: str, path: str, errors: Errors, *,
            required: bool = False, min_len: int = 0, max_len: int | None = None,
            choices: tuple[str, ...] = ()) -> str | None:
    p = _join(path, key)
    if key not in obj:
        if required:
            errors.append(f"{p}: required")
        return None
    value = obj[key]
    if not isinstance(value, str):
        errors.append(f"{p}: expected string, got {_type_name(value)}")
        return None
    if choices and value not in choices:
        errors.append(f"{p}: must be one of {', '.join(choices)}")
    elif len(value) < min_len:
        errors.append(f"{p}: empty" if min_len == 1 else f"{p}: shorter than {min_len}")
    elif max_len is not None and len(value) > max_len:
        errors.append(f"{p}: longer than {max_len}")
    return value


def _number(obj: Mapping[str, Any], key: str, path: str, errors: Errors, *,
            required: bool = False, integer: bool = False,
            lo: float | None = None, hi: float | None = None) -> None:
    p = _join(path, key)
    if key not in obj:
        if required:
            errors.append(f"{p}: required")
        return
    value = obj[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        want = "integer" if integer else "number"
        errors.append(f"{p}: expected {want}, got {_type_name(value)}")
        return
    if lo is not None and value < lo:
        errors.append(f"{p}: less than {lo:g}")
    elif hi is not None and value > hi:
        errors.append(f"{p}: greater than {hi:g}")


def _array(value: Any, path: str, errors: Errors, lo: int, hi: int) -> list[Any] | None:
    if not isinstance(value, list):
        errors.append(f"{path}: expected array, got {_type_name(value)}")
        return None
    if len(value) < lo:
        errors.append(f"{path}: fewer than {lo} items")
    elif len(value) > hi:
        errors.append(f"{path}: more than {hi} items")
    return value


# -- suggestions ------------------------------------------------------------------------------


def _postback(obj: Mapping[str, Any], path: str, errors: Errors) -> None:
    p = _join(path, "postback")
    if "postback" not in obj:
        errors.append(f"{p}: required")
        return
    pb = _object(obj["postback"], p, errors)
    if pb is not None:
        _string(pb, "data", p, errors, required=True, max_len=MAX_POSTBACK)


def _fallback_url(obj: Mapping[str, Any], path: str, errors: Errors) -> None:
    _string(obj, "fallbackUrl", path, errors, max_len=MAX_URL)


def _phone(obj: Mapping[str, Any], path: str, errors: Errors) -> None:
    _string(obj, "phoneNumber", path, errors, required=True, min_len=1, max_len=64)


def _open_url(o: Mapping[str, Any], p: str, e: Errors) -> None:
    _string(o, "url", p, e, required=True, min_len=1, max_len=MAX_URL)


def _dial(o: Mapping[str, Any], p: str, e: Errors) -> None:
    _phone(o, p, e)
    _fallback_url(o, p, e)


def _dial_enriched(o: Mapping[str, Any], p: str, e: Errors) -> None:
    _dial(o, p, e)
    _string(o, "subject", p, e, max_len=MAX_SUBJECT)


def _empty(o: Mapping[str, Any], p: str, e: Errors) -> None:
    return None


def _show_location(o: Mapping[str, Any], p: str, e: Errors) -> None:
    lp = _join(p, "location")
    if "location" not in o:
        e.append(f"{lp}: required")
    else:
        loc = _object(o["location"], lp, e)
        if loc is not None:
            has_query = "query" in loc
            _number(loc, "latitude", lp, e, required=not has_query, lo=-90, hi=90)
            _number(loc, "longitude", lp, e, required=not has_query, lo=-180, hi=180)
            _string(loc, "label", lp, e, max_len=MAX_LABEL)
            _string(loc, "query", lp, e, min_len=1, max_len=MAX_TEXT)
    _fallback_url(o, p, e)


def _calendar(o: Mapping[str, Any], p: str, e: Errors) -> None:
    _string(o, "startTime", p, e, required=True, min_len=1, max_len=64)
    _string(o, "endTime", p, e, required=True, min_len=1, max_len=64)
    _string(o, "title", p, e, required=True, min_len=1, max_len=MAX_TITLE)
    _string(o, "description", p, e, max_len=MAX_DESCRIPTION)
    _fallback_url(o, p, e)


def _compose_text(o: Mapping[str, Any], p: str, e: Errors) -> None:
    _phone(o, p, e)
    _string(o, "text", p, e, required=True, max_len=MAX_TEXT)


def _compose_recording(o: Mapping[str, Any], p: str, e: Errors) -> None:
    _phone(o, p, e)
    _string(o, "type", p, e, required=True, choices=RECORDING_TYPES)


_Check = Callable[[Mapping[str, Any], str, Errors], None]

#: action group → action type → check of its parameters (protocols.md §1, NODE).
ACTIONS: Mapping[str, Mapping[str, _Check]] = {
    "urlAction": {"openUrl": _open_url},
    "dialerAction": {"dialPhoneNumber": _dial, "dialEnrichedCall": _dial_enriched,
                     "dialVideoCall": _dial},
    "mapAction": {"requestLocationPush": _empty, "showLocation": _show_location},
    "calendarAction": {"createCalendarEvent": _calendar},
    "composeAction": {"composeTextMessage": _compose_text,
                      "composeRecordingMessage": _compose_recording},
    "deviceAction": {"requestDeviceSpecifics": _empty},
    "settingsAction": {"disableAnonymization": _empty, "enableDisplayedNotifications": _empty},
}


def _action(value: Any, path: str, errors: Errors) -> None:
    action = _object(value, path, errors)
    if action is None:
        return
    _string(action, "displayText", path, errors, required=True, min_len=1,
            max_len=MAX_DISPLAY_TEXT)
    _postback(action, path, errors)
    groups = [k for k in action if k in ACTIONS]
    if len(groups) != 1:
        errors.append(f"{path}: exactly one of {', '.join(ACTIONS)} required")
        return
    group = groups[0]
    gp = _join(path, group)
    body = _object(action[group], gp, errors)
    if body is None:
        return
    kinds = ACTIONS[group]
    present = [k for k in body if k in kinds]
    if len(present) != 1:
        errors.append(f"{gp}: exactly one of {', '.join(kinds)} required")
        return
    kp = _join(gp, present[0])
    params = _object(body[present[0]], kp, errors)
    if params is not None:
        kinds[present[0]](params, kp, errors)


def _reply(value: Any, path: str, errors: Errors) -> None:
    reply = _object(value, path, errors)
    if reply is None:
        return
    _string(reply, "displayText", path, errors, required=True, min_len=1,
            max_len=MAX_DISPLAY_TEXT)
    _postback(reply, path, errors)


def _suggestion(value: Any, path: str, errors: Errors) -> None:
    s = _object(value, path, errors)
    if s is None:
        return
    has_reply, has_action = "reply" in s, "action" in s
    if has_reply == has_action:
        errors.append(f"{path}: exactly one of reply, action required")
    elif has_reply:
        _reply(s["reply"], _join(path, "reply"), errors)
    else:
        _action(s["action"], _join(path, "action"), errors)


def _suggestion_list(value: Any, path: str, errors: Errors, hi: int) -> None:
    items = _array(value, path, errors, 1, hi)
    for i, item in enumerate(items or ()):
        _suggestion(item, f"{path}[{i}]", errors)


def validate_suggestions(obj: Any, path: str = "") -> list[str]:
    """Check a chip list ``{"suggestions": [...]}`` (the botsuggestion body, GSMA
    ``suggestedChipList``): 1–11 chips, each a valid reply or action. [] when valid."""
    errors: Errors = []
    chips = _object(obj, path or "$", errors)
    if chips is None:
        return errors
    sp = _join(path, "suggestions")
    if "suggestions" not in chips:
        errors.append(f"{sp}: required")
    else:
        _suggestion_list(chips["suggestions"], sp, errors, MAX_CHIPS)
    return errors


# -- cards --------------------------------------------------------------------------------------


def _font_styles(layout: Mapping[str, Any], key: str, path: str, errors: Errors) -> None:
    if key not in layout:
        return
    p = _join(path, key)
    styles = _array(layout[key], p, errors, 1, 3)
    seen: set[str] = set()
    for i, style in enumerate(styles or ()):
        if not isinstance(style, str) or style not in FONT_STYLES:
            errors.append(f"{p}[{i}]: must be one of {', '.join(FONT_STYLES)}")
        elif style in seen:
            errors.append(f"{p}[{i}]: duplicate {style}")
        else:
            seen.add(style)


def _media(value: Any, path: str, errors: Errors, heights: tuple[str, ...]) -> None:
    media = _object(value, path, errors)
    if media is None:
        return
    _string(media, "mediaUrl", path, errors, required=True, min_len=1, max_len=MAX_URL)
    _string(media, "mediaContentType", path, errors, required=True, min_len=1, max_len=255)
    _number(media, "mediaFileSize", path, errors, integer=True, lo=0)
    height = _string(media, "height", path, errors, required=True, choices=HEIGHTS)
    if height in HEIGHTS and height not in heights:
        errors.append(f"{_join(path, 'height')}: must be one of {', '.join(heights)} "
                      "in a SMALL_WIDTH carousel")
    _string(media, "thumbnailUrl", path, errors, min_len=1, max_len=MAX_URL)
    _string(media, "thumbnailContentType", path, errors, min_len=1, max_len=255)
    _number(media, "thumbnailFileSize", path, errors, integer=True, lo=0)
    _string(media, "contentDescription", path, errors, max_len=MAX_CONTENT_DESCRIPTION)


def _card_content(value: Any, path: str, errors: Errors, heights: tuple[str, ...]) -> None:
    content = _object(value, path, errors)
    if content is None:
        return
    if not any(k in content for k in ("media", "title", "description")):
        errors.append(f"{path}: at least one of media, title, description required")
    if "media" in content:
        _media(content["media"], _join(path, "media"), errors, heights)
    _string(content, "title", path, errors, min_len=1, max_len=MAX_TITLE)
    _string(content, "description", path, errors, min_len=1, max_len=MAX_DESCRIPTION)
    if "suggestions" in content:
        _suggestion_list(content["suggestions"], _join(path, "suggestions"), errors,
                         MAX_CARD_SUGGESTIONS)


def _card_layout(card: Mapping[str, Any], path: str, errors: Errors) -> None:
    lp = _join(path, "layout")
    if "layout" not in card:
        errors.append(f"{lp}: required")
        return
    layout = _object(card["layout"], lp, errors)
    if layout is None:
        return
    orientation = _string(layout, "cardOrientation", lp, errors, required=True,
                          choices=ORIENTATIONS)
    _string(layout, "imageAlignment", lp, errors, choices=ALIGNMENTS)
    if orientation == "HORIZONTAL" and "imageAlignment" not in layout:
        errors.append(f"{_join(lp, 'imageAlignment')}: required for a HORIZONTAL card")
    _font_styles(layout, "titleFontStyle", lp, errors)
    _font_styles(layout, "descriptionFontStyle", lp, errors)


def _carousel_layout(carousel: Mapping[str, Any], path: str, errors: Errors) -> str | None:
    lp = _join(path, "layout")
    if "layout" not in carousel:
        errors.append(f"{lp}: required")
        return None
    layout = _object(carousel["layout"], lp, errors)
    if layout is None:
        return None
    width = _string(layout, "cardWidth", lp, errors, required=True, choices=WIDTHS)
    _font_styles(layout, "titleFontStyle", lp, errors)
    _font_styles(layout, "descriptionFontStyle", lp, errors)
    return width


def validate_botmessage(obj: Any, path: str = "") -> list[str]:
    """Check a botmessage ``{"message": {"generalPurposeCard" | "generalPurposeCardCarousel":
    …}}`` (GSMA ``richcardMessage``). Returns problems with their JSON paths; [] when valid."""
    errors: Errors = []
    top = _object(obj, path or "$", errors)
    if top is None:
        return errors
    mp = _join(path, "message")
    if "message" not in top:
        errors.append(f"{mp}: required")
        return errors
    message = _object(top["message"], mp, errors)
    if message is None:
        return errors
    kinds = [k for k in ("generalPurposeCard", "generalPurposeCardCarousel") if k in message]
    if len(kinds) != 1:
        errors.append(f"{mp}: exactly one of generalPurposeCard, generalPurposeCardCarousel "
                      "required")
        return errors
    kp = _join(mp, kinds[0])
    card = _object(message[kinds[0]], kp, errors)
    if card is None:
        return errors
    cp = _join(kp, "content")
    if kinds[0] == "generalPurposeCard":
        _card_layout(card, kp, errors)
        if "content" not in card:
            errors.append(f"{cp}: required")
        else:
            _card_content(card["content"], cp, errors, HEIGHTS)
        return errors
    width = _carousel_layout(card, kp, errors)
    heights = SMALL_WIDTH_HEIGHTS if width == "SMALL_WIDTH" else HEIGHTS
    if "content" not in card:
        errors.append(f"{cp}: required")
        return errors
    cards = _array(card["content"], cp, errors, MIN_CAROUSEL, MAX_CAROUSEL)
    for i, item in enumerate(cards or ()):
        _card_content(item, f"{cp}[{i}]", errors, heights)
    return errors
