"""Card and suggestion bounds (fivegmc.maap.cards, protocols.md §10 GSMA schema bounds)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fivegmc.maap.cards import validate_botmessage, validate_suggestions

P = "RCSMessage.richcardMessage"


def reply(text: str = "Yes", data: str = "yes") -> dict[str, Any]:
    return {"reply": {"displayText": text, "postback": {"data": data}}}


def action(group: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"action": {group: {kind: params}, "displayText": "Go",
                       "postback": {"data": f"{group}.{kind}"}}}


ALL_ACTIONS = [
    action("urlAction", "openUrl", {"url": "https://example.com"}),
    action("dialerAction", "dialPhoneNumber", {"phoneNumber": "+8613800000001"}),
    action("dialerAction", "dialEnrichedCall", {"phoneNumber": "+861380", "subject": "Hi"}),
    action("dialerAction", "dialVideoCall", {"phoneNumber": "+861380",
                                             "fallbackUrl": "https://x.example"}),
    action("mapAction", "requestLocationPush", {}),
    action("mapAction", "showLocation", {"location": {"latitude": 39.9, "longitude": 116.4,
                                                      "label": "Beijing"}}),
    action("calendarAction", "createCalendarEvent", {
        "startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T11:00:00Z",
        "title": "Meet", "description": "Lab"}),
    action("composeAction", "composeTextMessage", {"phoneNumber": "+861380", "text": "hi"}),
    action("composeAction", "composeRecordingMessage", {"phoneNumber": "+861380",
                                                        "type": "AUDIO"}),
    action("deviceAction", "requestDeviceSpecifics", {}),
    action("settingsAction", "disableAnonymization", {}),
    action("settingsAction", "enableDisplayedNotifications", {}),
]


def card(**content: Any) -> dict[str, Any]:
    body = {"title": "Title", "description": "Desc", **content}
    return {"message": {"generalPurposeCard": {
        "layout": {"cardOrientation": "VERTICAL"}, "content": body}}}


def media(height: str = "MEDIUM_HEIGHT") -> dict[str, Any]:
    return {"mediaUrl": "https://example.com/a.jpg", "mediaContentType": "image/jpeg",
            "mediaFileSize": 1000, "height": height}


def carousel(n: int, width: str = "MEDIUM_WIDTH", height: str = "MEDIUM_HEIGHT"
             ) -> dict[str, Any]:
    return {"message": {"generalPurposeCardCarousel": {
        "layout": {"cardWidth": width},
        "content": [{"title": f"c{i}", "media": media(height)} for i in range(n)]}}}


def test_valid_chip_list_with_every_action_type() -> None:
    chips = {"suggestions": [reply(), *ALL_ACTIONS[:10]]}
    assert validate_suggestions(chips) == []
    assert validate_suggestions({"suggestions": ALL_ACTIONS[10:]}) == []


def test_chip_count_bounds() -> None:
    assert validate_suggestions({"suggestions": []}) == ["suggestions: fewer than 1 items"]
    assert validate_suggestions({"suggestions": [reply()] * 12}, "X") == [
        "X.suggestions: more than 11 items"]
    assert validate_suggestions({"suggestions": [reply()] * 11}) == []


def test_suggestion_field_bounds_name_their_path() -> None:
    errs = validate_suggestions({"suggestions": [reply("x" * 26, "d" * 2049)]}, "S")
    assert errs == ["S.suggestions[0].reply.displayText: longer than 25",
                    "S.suggestions[0].reply.postback.data: longer than 2048"]
    bad = action("dialerAction", "dialEnrichedCall", {"phoneNumber": "+1", "subject": "s" * 61})
    assert validate_suggestions({"suggestions": [bad]}) == [
        "suggestions[0].action.dialerAction.dialEnrichedCall.subject: longer than 60"]
    loc = action("mapAction", "showLocation", {"location": {"latitude": 1, "longitude": 2,
                                                            "label": "l" * 101}})
    assert validate_suggestions({"suggestions": [loc]}) == [
        "suggestions[0].action.mapAction.showLocation.location.label: longer than 100"]
    rec = action("composeAction", "composeRecordingMessage", {"phoneNumber": "1",
                                                              "type": "PHOTO"})
    assert "type: must be one of AUDIO, VIDEO" in validate_suggestions(
        {"suggestions": [rec]})[0]


def test_suggestion_structure_errors() -> None:
    assert validate_suggestions({"suggestions": [{}]}) == [
        "suggestions[0]: exactly one of reply, action required"]
    assert validate_suggestions({"suggestions": [{**reply(), "action": {}}]}) == [
        "suggestions[0]: exactly one of reply, action required"]
    no_pb = {"reply": {"displayText": "x"}}
    assert validate_suggestions({"suggestions": [no_pb]}) == [
        "suggestions[0].reply.postback: required"]
    unknown = {"action": {"teleportAction": {}, "displayText": "x", "postback": {"data": ""}}}
    assert "exactly one of urlAction" in validate_suggestions({"suggestions": [unknown]})[0]
    empty_url = action("urlAction", "openUrl", {})
    assert validate_suggestions({"suggestions": [empty_url]}) == [
        "suggestions[0].action.urlAction.openUrl.url: required"]
    assert validate_suggestions([]) == ["$: expected object, got array"]
    assert validate_suggestions({}) == ["suggestions: required"]


def test_valid_cards() -> None:
    assert validate_botmessage(card(media=media(), suggestions=[reply()] * 4)) == []
    horiz = card()
    horiz["message"]["generalPurposeCard"]["layout"] = {
        "cardOrientation": "HORIZONTAL", "imageAlignment": "LEFT",
        "titleFontStyle": ["bold", "underline"], "descriptionFontStyle": ["italics"]}
    assert validate_botmessage(horiz) == []
    assert validate_botmessage(carousel(2)) == []
    assert validate_botmessage(carousel(12)) == []
    assert validate_botmessage(carousel(3, "SMALL_WIDTH", "SHORT_HEIGHT")) == []


def test_card_bounds() -> None:
    assert validate_botmessage(card(title="t" * 201), P) == [
        f"{P}.message.generalPurposeCard.content.title: longer than 200"]
    assert validate_botmessage(card(description="d" * 2001)) == [
        "message.generalPurposeCard.content.description: longer than 2000"]
    assert validate_botmessage(card(suggestions=[reply()] * 5)) == [
        "message.generalPurposeCard.content.suggestions: more than 4 items"]
    m = media()
    m["contentDescription"] = "c" * 201
    assert validate_botmessage(card(media=m)) == [
        "message.generalPurposeCard.content.media.contentDescription: longer than 200"]
    assert validate_botmessage(card(title="")) == [
        "message.generalPurposeCard.content.title: empty"]


def test_carousel_bounds_and_small_width_heights() -> None:
    path = f"{P}.message.generalPurposeCardCarousel.content"
    assert validate_botmessage(carousel(1), P) == [f"{path}: fewer than 2 items"]
    assert validate_botmessage(carousel(13), P) == [f"{path}: more than 12 items"]
    errs = validate_botmessage(carousel(4, "SMALL_WIDTH", "TALL_HEIGHT"), P)
    assert len(errs) == 4
    assert errs[3] == (f"{path}[3].media.height: must be one of SHORT_HEIGHT, MEDIUM_HEIGHT "
                       "in a SMALL_WIDTH carousel")
    long_title = carousel(5)
    long_title["message"]["generalPurposeCardCarousel"]["content"][3]["title"] = "x" * 201
    assert validate_botmessage(long_title, P) == [f"{path}[3].title: longer than 200"]


def test_layout_and_font_styles() -> None:
    c = card()
    layout = c["message"]["generalPurposeCard"]["layout"]
    layout["titleFontStyle"] = ["bold", "bold"]
    assert validate_botmessage(c) == [
        "message.generalPurposeCard.layout.titleFontStyle[1]: duplicate bold"]
    layout["titleFontStyle"] = ["bold", "italics", "underline", "bold"]
    assert validate_botmessage(c) == [
        "message.generalPurposeCard.layout.titleFontStyle: more than 3 items",
        "message.generalPurposeCard.layout.titleFontStyle[3]: duplicate bold"]
    layout["titleFontStyle"] = ["blink"]
    assert "must be one of italics, bold, underline" in validate_botmessage(c)[0]
    layout["titleFontStyle"] = ["bold"]
    layout["cardOrientation"] = "HORIZONTAL"
    assert validate_botmessage(c) == [
        "message.generalPurposeCard.layout.imageAlignment: required for a HORIZONTAL card"]


def test_structure_errors() -> None:
    assert validate_botmessage({}) == ["message: required"]
    assert validate_botmessage({"message": {}}) == [
        "message: exactly one of generalPurposeCard, generalPurposeCardCarousel required"]
    assert validate_botmessage({"message": {"generalPurposeCard": {}}}) == [
        "message.generalPurposeCard.layout: required",
        "message.generalPurposeCard.content: required"]
    assert validate_botmessage(card(title=5)) == [
        "message.generalPurposeCard.content.title: expected string, got number"]
    c = card()
    c["message"]["generalPurposeCard"]["content"] = {}
    assert validate_botmessage(c) == [
        "message.generalPurposeCard.content: at least one of media, title, description "
        "required"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["message", "generalPurposeCard", "layout", "content",
                                       "suggestions", "reply", "action", "title", "media",
                                       "height", "generalPurposeCardCarousel", "postback",
                                       "data", "displayText", "urlAction", "openUrl",
                                       "cardWidth", "cardOrientation", "x"]),
                      inner, max_size=5),
    max_leaves=25)


@given(JSON)
def test_any_json_gives_a_list_of_strings(obj: Any) -> None:
    for fn in (validate_botmessage, validate_suggestions):
        errs = fn(copy.deepcopy(obj), "R")
        assert isinstance(errs, list)
        assert all(isinstance(e, str) and e.startswith(("R", "$")) for e in errs)
