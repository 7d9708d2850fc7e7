"""Editing through the admin as a person would: read the change form as rendered, change one
field, post it back. So a test needs to know only the field it changes, not every field and
inline of the page."""

from html.parser import HTMLParser

from audit.models import AuditEvent


class _FormReader(HTMLParser):
    def __init__(self, form_id: str | None):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = form_id is None
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.form_id is not None and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "image", "file", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.setdefault(name, []).append(
                a.get("value", "on" if kind == "checkbox" else "")
            )
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data[self._textarea] = ["".join(self._text).lstrip("\n")]
            self._textarea = None
        elif tag == "form" and self.inside and self.form_id is not None:
            self.inside = False

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_data(html: str, form_id: str | None = None) -> dict:
    reader = _FormReader(form_id)
    reader.feed(html)
    return {k: v if len(v) != 1 else v[0] for k, v in reader.data.items() if v != []}


def admin_change(client, url: str, form_id: str, **changes):
    """GET the admin form at `url`, apply `changes`, POST it back; returns the response."""
    page = client.get(url)
    assert page.status_code == 200, url
    data = form_data(page.content.decode(), form_id)
    data.update(changes)
    return client.post(url, data)


def events_for(obj_or_type, object_id=None, **filters) -> list[AuditEvent]:
    if isinstance(obj_or_type, str):
        object_type = obj_or_type
    else:
        object_type = obj_or_type._meta.label_lower
        object_id = obj_or_type.pk if object_id is None else object_id
    rows = AuditEvent.objects.filter(object_type=object_type, **filters)
    if object_id is not None:
        rows = rows.filter(object_id=str(object_id))
    return list(rows.order_by("id"))
