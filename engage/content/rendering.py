"""Render message templates: email (subject, text, HTML) and SMS bodies.

Templates live in ``templates/<channel>/<name>[.<locale>].<part>``: email parts
are ``subject.txt``, ``txt`` and ``html``; SMS has only ``txt``. Files without a
locale are English. A patient's locale is used when *every* part of the
template has a variant for it (``es_MX`` then ``es``), otherwise English, and
dates are then formatted in English too so a message never mixes languages.

Clinic staff edit these files, so they run in Jinja's sandbox, with
``StrictUndefined`` (a misspelt variable is an error naming the template and
variable, never a blank in a patient's message) and autoescaping for HTML only.
Templates receive plain dicts, never ORM objects, so they cannot wander
through relationships to other patients' data.
Those dicts are built in :mod:`engage.content.message_context`.
"""

from __future__ import annotations

import contextlib
import re
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_date_format, get_datetime_format
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from engage.config import get_settings
from engage.content.sms_text import GSM7, UCS2, normalise_sms, segment_info

__all__ = [
    "GSM7",
    "UCS2",
    "RenderedEmail",
    "RenderedSms",
    "TemplateError",
    "Texts",
    "babel_locale",
    "checked_recently",
    "render_email",
    "render_sms",
    "render_file",
    "render_sms_raw",
    "resolve_template",
    "stop_line",
    "template_locales",
    "template_names",
    "template_variables",
    "templates_root",
]

EMAIL_PARTS = ("subject.txt", "txt", "html")
SMS_PARTS = ("txt",)
PARTS = {"email": EMAIL_PARTS, "sms": SMS_PARTS}
DEFAULT_LOCALE = "en"

#: The opt-out instruction the first SMS of an enrollment must carry (CTIA), by language.
STOP_LINES = {
    "en": "Reply STOP to opt out.",
    # "no recibir más mensajes" would cost UCS-2 (the "á"), more than doubling a Spanish SMS.
    "es": "Responda STOP o BAJA para darse de baja.",
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedSms:
    body: str
    segments: int
    encoding: str  # "GSM-7" | "UCS-2"


class TemplateError(Exception):
    """A template could not be rendered. Names the template file (and line, variable); never patient data."""

    def __init__(self, template: str, detail: str, line: int | None = None) -> None:
        self.template = template
        self.detail = detail
        self.line = line
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {detail}")


class Texts(Mapping[str, str]):
    """Template sources stored in the database (``{"sms/stretch.es.txt": source}``), frozen and hashable.

    Rendering with texts reads a template of theirs from them and everything else (partials, layouts,
    templates they do not hold) from the files. A template (channel and name) they hold any part of is
    theirs only: a locale they lack falls back to their English, never to a file. Being hashable, the
    texts key the cache of compiled templates, so a published version is compiled once per process.
    """

    __slots__ = ("_data", "_hash", "templates")

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = dict(data or {})
        self._hash = hash(frozenset(self._data.items()))
        #: ``{(channel, name)}`` of the templates held.
        self.templates = frozenset(_template_of(path) for path in self._data)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Texts):
            return self._hash == other._hash and self._data == other._data
        return isinstance(other, Mapping) and self._data == dict(other)

    def holds(self, channel: str, name: str) -> bool:
        return (channel, name) in self.templates


def as_texts(texts: Mapping[str, str] | None) -> Texts | None:
    """``texts`` as :class:`Texts` (None and empty: none)."""
    if not texts:
        return None
    return texts if isinstance(texts, Texts) else Texts(texts)


def _template_of(path: str) -> tuple[str, str]:
    channel, _, file = path.partition("/")
    return channel, file.partition(".")[0]


# --- the environment ---------------------------------------------------------------------------

#: How long a look at the template files is trusted. A send renders up to four files and their partials, and
#: asking the file system about each of them on every render (Jinja's modification-time check, whether a
#: locale's variant exists, the sequence files) was about a twentieth of a send's CPU; an edited or added
#: file is still seen within a second.
FILE_CHECK_SECONDS = 1.0

_T = TypeVar("_T")
_checked: dict[Hashable, tuple[float, Any]] = {}


def checked_recently(key: Hashable, check: Callable[[], _T]) -> _T:
    """``check()``, or its result for ``key`` when it ran less than :data:`FILE_CHECK_SECONDS` ago.

    For looks at the template files only (they change when a person edits them); an exception is not kept."""
    now = time.monotonic()
    found = _checked.get(key)
    if found is not None and now - found[0] < FILE_CHECK_SECONDS:
        value: _T = found[1]
        return value
    value = check()
    if len(_checked) >= 4096:  # tests make many template folders; a process that sends has a few dozen files
        _checked.clear()
    _checked[key] = (now, value)
    return value


class _FileLoader(FileSystemLoader):
    """Jinja's file loader, asking whether a compiled template's file changed at most once a second."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        checked = time.monotonic()

        def recent_or_uptodate() -> bool:
            nonlocal checked
            now = time.monotonic()
            if now - checked < FILE_CHECK_SECONDS:
                return True
            checked = now
            return uptodate()

        return source, filename, recent_or_uptodate


def templates_root(templates_dir: Path | None = None) -> Path:
    """The templates folder: ``templates_dir`` if given, else ``ENGAGE_TEMPLATES_DIR``."""
    return _resolved(templates_dir or get_settings().templates_dir)


@lru_cache(maxsize=64)
def _resolved(folder: Path | str) -> Path:
    # resolve() asks the file system about every part of the path; a send renders up to four files, each
    # asking again (about 2 % of a send's CPU). Once per folder and process is enough. The environment and
    # its compiled templates are cached already (_environment, Jinja's own cache), and a template file a
    # person edits is still seen within a second (Jinja checks its modification time: _FileLoader).
    return Path(folder).resolve()


@lru_cache(maxsize=16)
def _file_environment(templates_dir: Path) -> SandboxedEnvironment:
    return _new_environment(_FileLoader(str(templates_dir)))


@lru_cache(maxsize=128)
def _texts_environment(templates_dir: Path, texts: Texts) -> SandboxedEnvironment:
    # One environment (and so one cache of compiled templates) per set of stored texts: a published
    # version's templates are compiled once per process, like the files'.
    return _new_environment(ChoiceLoader([DictLoader(dict(texts)), _FileLoader(str(templates_dir))]))


def _environment(templates_dir: Path, texts: Texts | None = None) -> SandboxedEnvironment:
    return _file_environment(templates_dir) if texts is None else _texts_environment(templates_dir, texts)


def _new_environment(loader: BaseLoader) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=loader,
        # A dict, not Jinja's LRU cache: its lookup moves the key within a deque (linear in the cache's size) and
        # was a few per cent of a send's CPU. An environment holds a set of files or one version's texts, so it
        # never grows beyond their templates; an edited file replaces its entry (auto_reload still checks).
        cache_size=-1,
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        local_date=_local_date, local_time=_local_time, local_datetime=_local_datetime, local_day=_local_day
    )
    return env


@lru_cache(maxsize=64)
def babel_locale(locale: str | None) -> Locale:
    """The Babel locale for ``locale`` (``es-MX``, ``es_MX``, ``es``); English when Babel does not know it.

    Cached: parsing one again for every date of every message was a tenth of an SMS's rendering."""
    try:
        return Locale.parse((locale or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


@lru_cache(maxsize=64)
def _date_pattern(locale: Locale) -> str:
    # The locale's full date without the year ("EEEE, MMMM d" / "EEEE, d 'de' MMMM"): appointments are days away.
    pattern = get_date_format("full", locale=locale).pattern
    if pattern.startswith("y"):
        return pattern
    pattern = re.sub(r"[\s,.]*(?:'de'\s*)?y+[.,]?", "", pattern).strip()
    # Spanish writes no comma after the weekday ("miércoles 30 de septiembre"); CLDR's pattern has one.
    return pattern.replace("EEEE,", "EEEE") if locale.language == "es" else pattern


def _plain_spaces(text: str) -> str:
    # CLDR puts U+202F/U+00A0 in "9:00 AM"; one of those would turn an SMS into UCS-2.
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _localise(ctx: Context, value: Any, filter_name: str) -> tuple[datetime, Locale]:
    if not isinstance(value, datetime):
        raise TypeError(f"{filter_name} needs a datetime")
    if value.tzinfo is None:
        raise ValueError(f"{filter_name} needs an aware datetime")
    tz = ZoneInfo(str(ctx.get("tz") or "UTC"))
    return value.astimezone(tz), babel_locale(ctx.get("locale"))


# Appointments fall on a few days and times, so the same words come back for message after message:
# formatted once (Babel's pattern formatting was about a twentieth of a send's CPU).
@lru_cache(maxsize=4096)
def _day_text(day: date, pattern: str, locale: Locale) -> str:
    return _plain_spaces(format_date(day, pattern, locale=locale))


@lru_cache(maxsize=4096)
def _clock_text(clock: clock_time, locale: Locale) -> str:
    # A wall-clock time already in the patient's zone (the short pattern shows no zone).
    return _plain_spaces(format_time(clock, "short", locale=locale))


@pass_context
def _local_date(ctx: Context, value: Any) -> str:
    """``Wednesday, September 30`` / ``miércoles, 30 de septiembre`` in the context's time zone."""
    local, locale = _localise(ctx, value, "local_date")
    return _day_text(local.date(), _date_pattern(locale), locale)


@lru_cache(maxsize=64)
def _day_pattern(locale: Locale) -> str:
    # The locale's long date without the year or weekday ("MMMM d" / "d 'de' MMMM").
    pattern = get_date_format("long", locale=locale).pattern
    return re.sub(r"[\s,.]*(?:'de'\s*)?y+[.,]?", "", pattern).strip()


@pass_context
def _local_day(ctx: Context, value: Any) -> str:
    """``September 30`` / ``30 de septiembre``: no weekday, so a Spanish SMS stays GSM-7 ("sábado" would not)."""
    local, locale = _localise(ctx, value, "local_day")
    return _day_text(local.date(), _day_pattern(locale), locale)


@pass_context
def _local_time(ctx: Context, value: Any) -> str:
    """``9:00 AM`` / ``9:00`` in the context's time zone."""
    local, locale = _localise(ctx, value, "local_time")
    return _clock_text(local.time(), locale)


@pass_context
def _local_datetime(ctx: Context, value: Any) -> str:
    """``Wednesday, September 30 at 9:00 AM`` / ``miércoles, 30 de septiembre, 9:00``."""
    local, locale = _localise(ctx, value, "local_datetime")
    day = _day_text(local.date(), _date_pattern(locale), locale)
    clock = _clock_text(local.time(), locale)
    if locale.language == "en":
        return f"{day} at {clock}"
    return str(get_datetime_format("long", locale=locale)).replace("'", "").format(clock, day)


# --- finding and rendering files -----------------------------------------------------------------


def _locale_candidates(locale: str | None) -> list[str]:
    loc = (locale or DEFAULT_LOCALE).replace("-", "_")
    out = [loc, loc.split("_")[0]]
    return list(dict.fromkeys(c for c in out if c))


def resolve_template(
    channel: str, name: str, locale: str | None, templates_dir: Path | None = None, texts: Texts | None = None
) -> tuple[str, dict[str, str]]:
    """``(effective_locale, {part: file})`` for a template, files relative to the templates folder.

    The requested locale (``es_MX``, then ``es``) when every part has a variant
    for it, else the unsuffixed English files. Raises :class:`TemplateError` when
    the English files are missing too. With ``texts`` holding the template, only they count.
    """
    if channel not in PARTS:
        raise TemplateError(f"{channel}/{name}", f"unknown channel {channel!r}")
    root = templates_root(templates_dir)
    parts = PARTS[channel]
    stored = texts if texts is not None and texts.holds(channel, name) else None

    def exists(file: str) -> bool:
        if stored is not None:
            return file in stored
        return checked_recently(("is_file", root, file), lambda: (root / file).is_file())

    for loc in _locale_candidates(locale):
        files = {part: f"{channel}/{name}.{loc}.{part}" for part in parts}
        if all(exists(f) for f in files.values()):
            return loc, files
    files = {part: f"{channel}/{name}.{part}" for part in parts}
    for f in files.values():
        if not exists(f):
            raise TemplateError(f, "template text not found" if stored is not None else "template file not found")
    return DEFAULT_LOCALE, files


def template_variables(
    channel: str, name: str, locale: str | None, templates_dir: Path | None = None, texts: Texts | None = None
) -> frozenset[str] | None:
    """The variables the template's parts (and the partials and layouts they use) read, from Jinja's own
    analysis of their source; None when that cannot be known (a partial named by a variable, a syntax error).

    A context builder may leave out what no part reads (signing links an SMS never shows). Each compiled
    template is analysed once, so an edited file (a new compiled template) is analysed again; the answer for
    a template is kept for :data:`FILE_CHECK_SECONDS`, like every look at the files. Raises
    :class:`TemplateError` like :func:`resolve_template`."""
    root = templates_root(templates_dir)
    return checked_recently(
        ("variables", root, texts, channel, name, locale),
        lambda: _template_variables(channel, name, locale, root, texts),
    )


def _template_variables(
    channel: str, name: str, locale: str | None, root: Path, texts: Texts | None
) -> frozenset[str] | None:
    _effective, files = resolve_template(channel, name, locale, root, texts)
    env = _environment(root, texts)
    found: set[str] = set()
    todo, seen = list(files.values()), set()
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        try:
            template = env.get_template(file)
        except (TemplateNotFound, TemplateSyntaxError):
            return None
        analysed = _analysed.get(template)
        if analysed is None:
            analysed = _analysed[template] = _analyse(env, file)
        if analysed is None:
            return None
        names, referenced = analysed
        found |= names
        todo.extend(referenced)
    return frozenset(found)


#: Per compiled template: (variables it reads, templates it includes, extends or imports); None: unknown.
_analysed: weakref.WeakKeyDictionary[Template, tuple[frozenset[str], tuple[str, ...]] | None] = (
    weakref.WeakKeyDictionary()
)


def _analyse(env: SandboxedEnvironment, file: str) -> tuple[frozenset[str], tuple[str, ...]] | None:
    try:
        source = env.loader.get_source(env, file)[0] if env.loader is not None else None
        tree = env.parse(source) if source is not None else None
    except (TemplateNotFound, TemplateSyntaxError):
        return None
    if tree is None:
        return None
    referenced = tuple(meta.find_referenced_templates(tree))
    if any(name is None for name in referenced):
        return None
    return frozenset(meta.find_undeclared_variables(tree)), tuple(name for name in referenced if name is not None)


def _template_frame(tb: TracebackType | None, root: Path) -> tuple[str, int] | None:
    """The innermost traceback frame inside a template file (Jinja rewrites frames to template lines)."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        with contextlib.suppress(ValueError):  # a frame of Jinja or engage itself, not a template
            found = (Path(filename).resolve().relative_to(root).as_posix(), tb.tb_lineno)
        tb = tb.tb_next
    return found


def _render(root: Path, file: str, context: dict[str, Any], texts: Texts | None = None) -> str:
    try:
        return _environment(root, texts).get_template(file).render(context)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.name or file, f"syntax error: {exc.message}", exc.lineno) from None
    except TemplateNotFound as exc:
        raise TemplateError(file, f"template not found: {exc.name}") from None
    except (UndefinedError, SecurityError) as exc:
        # Jinja's messages here name a variable or attribute and an object *type*, never a value.
        where = _template_frame(exc.__traceback__, root) or (file, None)
        kind = "undefined variable" if isinstance(exc, UndefinedError) else "unsafe operation"
        raise TemplateError(where[0], f"{kind}: {exc.message or exc}", where[1]) from None
    except Exception as exc:  # a filter or test failed; its message could quote a value, so leave it out
        where = _template_frame(exc.__traceback__, root) or (file, None)
        raise TemplateError(where[0], f"{type(exc).__name__} while rendering", where[1]) from None


def render_file(
    file: str, context: dict[str, Any], templates_dir: Path | None = None, texts: Texts | None = None
) -> str:
    """One template file (relative to the templates folder, e.g. ``web/thanks.html``) in the sandbox.

    The same environment as messages: sandboxed, ``StrictUndefined``, HTML autoescaped.
    ``texts``: stored sources that replace files of the same path. Raises :class:`TemplateError`.
    """
    return _render(templates_root(templates_dir), file, context, texts)


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def stop_line(locale: str | None) -> str:
    """The opt-out instruction in the locale's language (English when we have none for it)."""
    return STOP_LINES.get(babel_locale(locale).language, STOP_LINES[DEFAULT_LOCALE])


def render_email(
    name: str,
    context: dict[str, Any],
    locale: str = DEFAULT_LOCALE,
    templates_dir: Path | None = None,
    texts: Texts | None = None,
) -> RenderedEmail:
    """Subject (one line), plain text and HTML of ``templates/email/<name>`` (or of ``texts``); raises
    :class:`TemplateError`."""
    root = templates_root(templates_dir)
    effective, files = resolve_template("email", name, locale, root, texts)
    ctx = {**context, "locale": effective}
    subject = " ".join(_render(root, files["subject.txt"], ctx, texts).split())
    return RenderedEmail(
        subject=subject,
        text=_tidy_text(_render(root, files["txt"], ctx, texts)),
        html=_render(root, files["html"], ctx, texts).strip() + "\n",
    )


def render_sms_raw(
    name: str,
    context: dict[str, Any],
    locale: str = DEFAULT_LOCALE,
    templates_dir: Path | None = None,
    texts: Texts | None = None,
) -> tuple[str, str, str]:
    """``(file, effective_locale, text)``: the SMS as the template produced it, before any normalising."""
    root = templates_root(templates_dir)
    effective, files = resolve_template("sms", name, locale, root, texts)
    return files["txt"], effective, _render(root, files["txt"], {**context, "locale": effective}, texts)


def finish_sms(raw: str, locale: str, first_sms: bool) -> str:
    """Replace GSM look-alikes, tidy whitespace, and add the STOP line to an enrollment's first SMS."""
    lines = [" ".join(line.split()) for line in normalise_sms(raw).splitlines()]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if first_sms and "STOP" not in body:
        body = f"{body} {stop_line(locale)}".strip()
    return body


def render_sms(
    name: str,
    context: dict[str, Any],
    locale: str = DEFAULT_LOCALE,
    templates_dir: Path | None = None,
    texts: Texts | None = None,
) -> RenderedSms:
    """The SMS body of ``templates/sms/<name>``, normalised to GSM where a look-alike exists.

    When ``context["first_sms"]`` is true the body ends with the opt-out line
    ("Reply STOP to opt out."), unless the template already says STOP.
    Raises :class:`TemplateError`.
    """
    _file, effective, raw = render_sms_raw(name, context, locale, templates_dir, texts)
    body = finish_sms(raw, effective, bool(context.get("first_sms")))
    encoding, segments, _units = segment_info(body)
    return RenderedSms(body=body, segments=segments, encoding=encoding)


# --- listing templates -------------------------------------------------------------------------


def template_names(channel: str, templates_dir: Path | None = None) -> list[str]:
    """Names of the templates shipped for a channel (files starting with ``_`` are layouts, not messages)."""
    return sorted({name for name, _loc in _scan(channel, templates_root(templates_dir))})


def template_locales(templates_dir: Path | None = None) -> list[str]:
    """Every locale any template has a variant for, English first."""
    root = templates_root(templates_dir)
    found = {loc for channel in PARTS for _name, loc in _scan(channel, root)}
    return [DEFAULT_LOCALE, *sorted(found - {DEFAULT_LOCALE})]


def _scan(channel: str, root: Path) -> Iterable[tuple[str, str]]:
    folder = root / channel
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if not path.is_file() or path.name.startswith((".", "_")):
            continue
        for part in sorted(PARTS[channel], key=len, reverse=True):  # "subject.txt" before "txt"
            if path.name.endswith("." + part):
                stem = path.name[: -len(part) - 1]
                name, _, loc = stem.partition(".")
                yield name, loc or DEFAULT_LOCALE
                break
