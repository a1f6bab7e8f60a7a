"""Red-flag symptoms and pain scores written inside a sentence. Pure; used by :mod:`engage.conversation.replies`.

Both read a normalised body (case-, accent- and punctuation-folded; ``7/10`` kept).

:func:`red_flags` names the warning signs a reply mentions, in English or Spanish, so that the
patient always gets the safety answer and staff see the reply at the top of the inbox. The
list follows the clinic's emergency rule (``templates/_safety``): new bladder or bowel trouble,
numbness between the legs (the saddle area), a leg getting weaker; and the signs after needling
that need a call the same day: fever or a hot, swollen needle site, and fainting. A false
alarm costs a phone call; a missed one can cost a leg.

:func:`score_in_sentence` finds one 0-10 pain score written as part of a sentence
(``9/10 worse after yesterday``, ``pain 9 since the needling``, ``nope, still 8``,
``sigue en 8``): a number marked as a score by ``/10`` (``de 10``, ``sobre 10``,
``out of 10``) or by the word before it (pain, dolor, still, todavia, sigue en, ...).
"""

from __future__ import annotations

import re

_SADDLE_PLACES = (
    r"(?:groin|crotch|private(?: parts?| area)?|genitals?|privates|bottom|butt|buttocks|inner thighs?|saddle|bum)"
)
_ES_SADDLE_PLACES = r"(?:entre las piernas|entrepierna|ingle|genitales|zona genital|partes intimas|gluteos|nalgas)"
_ES_NUMB = r"(?:entumec\w*|adormec\w*|dormid\w*|hormigue\w*|no siento|sin sensibilidad)"

RED_FLAGS: dict[str, tuple[str, ...]] = {
    "bladder or bowel": (
        r"\bbladder\b",
        r"\bbowels?\b",
        r"\bincontinen\w*",
        r"\b(?:can t|cant|cannot|couldn t|unable to|trouble|problems?|hard to) (?:pee|peeing|urinate|urinating|poop|"
        r"pooping|go to the bathroom)\b",
        r"\b(?:wet|soiled|peed|pooped|pissed) (?:myself|my pants|the bed)\b",
        r"\bvejiga\b",
        r"\bintestin\w*",
        r"\bincontinencia\b",
        r"\bno puedo (?:orinar|hacer pipi|hacer del bano|evacuar|aguantar la orina)\b",
        r"\b(?:se me salio|me hice) (?:la orina|pipi|popo|encima)\b",
        r"\besfinter\w*",
        r"\bcontrol de (?:la orina|los esfinteres|mi vejiga)\b",
    ),
    "numbness between the legs": (
        r"\bsaddle\b",
        rf"\bnumb\w* (?:\w+ ){{0,3}}(?:in|around|on) (?:my |the )?{_SADDLE_PLACES}",
        r"\bnumb\w* (?:\w+ ){0,3}between (?:my |the )?legs\b",
        rf"\b(?:{_SADDLE_PLACES}|between (?:my |the )?legs) (?:\w+ ){{0,3}}(?:numb|tingl\w*|no feeling|dead|asleep)",
        rf"\bcan t feel (?:my |the )?{_SADDLE_PLACES}",
        rf"{_ES_NUMB} (?:\w+ ){{0,4}}{_ES_SADDLE_PLACES}",
        rf"{_ES_SADDLE_PLACES} (?:\w+ ){{0,4}}{_ES_NUMB}",
        r"\bsilla de montar\b",
    ),
    "leg getting weaker": (
        r"\blegs? (?:\w+ ){0,3}(?:weak|weaker|giving (?:out|way)|gave (?:out|way)|buckl\w*|collaps\w*)",
        r"\bweak\w* (?:\w+ ){0,2}(?:leg|legs|foot|ankle)\b",
        r"\b(?:can t|cant|cannot) (?:lift|move|raise) (?:my |the )?(?:foot|leg|toes)\b",
        r"\bfoot drop\b",
        r"\bdragging (?:my |the )?(?:foot|leg)\b",
        r"\bpierna\w* (?:\w+ ){0,3}(?:debil|se me dobla|no me responde|floja|no me sostiene)",
        r"\bdebilidad (?:\w+ ){0,3}pierna",
        r"\bno puedo (?:levantar|mover) (?:el |la |mi )?(?:pie|pierna)\b",
        r"\barrastr\w* (?:el |la |mi )?(?:pie|pierna)\b",
    ),
    "fever or infected needle site": (
        r"\bfever\w*",
        r"\bchills\b",
        r"\bhigh temp\w*",
        r"\bpus\b",
        r"\binfect\w*",
        r"\b(?:hot|warm|red) (?:and )?swollen\b",
        r"\bswollen (?:and )?(?:hot|warm|red)\b",
        r"\bfiebre\b",
        r"\bcalentura\b",
        r"\bescalofrios\b",
        r"\binfecci\w*",
        r"\binfectad\w*",
        r"\bhinchad\w* (?:y )?(?:caliente|roj\w*)",
        r"\b(?:caliente|roj\w*) (?:y )?hinchad\w*",
    ),
    "fainting": (
        r"\bfaint\w*",
        r"\bpass(?:ed)? out\b",
        r"\bblack(?:ed)? out\b",
        r"\blost consciousness\b",
        r"\bdesmay\w*",
        r"\bperdi (?:el conocimiento|la conciencia|el sentido)\b",
        r"\bme desvaneci\b",
    ),
}
_FLAGS = {name: re.compile("|".join(patterns)) for name, patterns in RED_FLAGS.items()}

_OUT_OF_TEN = re.compile(r"\b(\d{1,2})\s*(?:/|out of|de|sobre)\s*10\b")
_UNITS = (
    r"(?:min|mins|minutes|minutos|hours?|hrs?|horas?|days?|dias?|weeks?|semanas?|am|pm|times|veces|pills?|"
    r"pastillas|mg|miles|millas|blocks|cuadras|years?|anos)"
)
_MARKED = re.compile(
    r"\b(?:pain|pain level|pain score|dolor|nivel|level|score|still|todavia|sigue|sigo|stays?|stayed)"
    r"(?: (?:is|was|at|a|an|about|around|like|es|era|en|un|de|como|of|in|on|level|nivel|the|now|ahora|hoy|today)){0,3}"
    rf" (\d{{1,2}})\b(?! {_UNITS}\b)"
)
# Every number that could be read as a score: not a count of minutes, days, pills...
_NUMBER = re.compile(rf"(?<![\d.,])(\d+)(?![\d.,])(?! ?{_UNITS}\b)")


def red_flags(text: str) -> tuple[str, ...]:
    """The red-flag signs ``text`` mentions (names from :data:`RED_FLAGS`), in a stable order; () for none."""
    return tuple(name for name, pattern in _FLAGS.items() if pattern.search(text))


def score_in_sentence(text: str) -> int | None:
    """The one 0-10 pain score written in ``text`` (``9/10 worse``, ``pain 9 since``, ``still 8``), else None.

    None when it names two different scores, or when no number in it is marked as a score.
    """
    found = {int(m.group(1)) for m in _OUT_OF_TEN.finditer(text)}
    found |= {int(m.group(1)) for m in _MARKED.finditer(text)}
    found = {n for n in found if 0 <= n <= 10}
    if len(found) != 1:
        return None
    others = {int(n) for n in _NUMBER.findall(_OUT_OF_TEN.sub(r"\1", text))} - found
    return None if others else found.pop()
