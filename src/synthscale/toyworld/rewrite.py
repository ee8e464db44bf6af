"""Rephrasings of a web document: clean encyclopedic prose (hq) and Q/A pairs (qa).

The rewriter reads a document the way an instruction-tuned LLM does with the WRAP
prompts ("keep every fact, name, date and number; leave out menus, adverts, boilerplate
and chatter"), line by line:

- every fact of ``meta["facts"]`` is stated once: in the document's own words when it has
  a clean clause or a parenthesis for it (``OWN_WORDS``, ``APPOSITIONS``: hedges such as
  "i think" removed), otherwise in clean encyclopedic phrasing; the typos of informal
  posts do not survive;
- every other line is sorted into a kind (see ``KEEP``): the reporting sentences and
  residents' quotes of a body, the headline, the source line (date and publication, or
  forum and board), who wrote which post, a listing's price and details, page furniture
  (navigation, footers, share, cookie and reply lines), and chatter (off-topic posts and
  comments). A line of a kind is kept with that kind's probability, copied as written or
  said as a clean sentence that keeps its content words (``PARAPHRASE``; chatter loses
  its typos either way); otherwise it is left out.

Real rewriters keep nearly all of the content, much of the noise that carries content
(when and where something was published, a price, what a resident said) and little of
the boilerplate and chatter. The probabilities in ``KEEP`` are the calibrated part of
this model: docs/toyworld.md says against which figures of real LLM rewrites they were
set. Nothing here knows about models, budgets or losses.

Only the schema and the natural writer's inventory of clutter are needed, not the
world, so a backend can rephrase any toyworld document, including a chunk of one
(lines it cannot place are read as body text).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .natural import (CHATTER, FILLER, FOOTER_LINES, HEADLINES, LISTING_EXTRAS, LISTING_HEADERS, MONTHS,
                      NAV_LINES)
from .render import encyclopedic, question, sentence_case
from .schema import RELATION_BY_NAME, fill

# Chance that the rewriter keeps a line of each kind (calibrated; docs/toyworld.md).
KEEP = {
    "note": 0.9,         # a reporting sentence of a body (FILLER)
    "quote": 0.9,        # a resident's quote
    "title": 0.7,        # the headline, thread line or the name a profile or listing is about
    "source": 0.8,       # date and publication (news), forum and board (forum), notice header (listing)
    "attribution": 0.6,  # which forum member stated a fact
    "offer": 0.9,        # a listing's price and contact
    "detail": 0.6,       # a listing's other lines (key lines, posted, views, condition, ...)
    "furniture": 0.35,   # navigation, footer, share, cookie and reply lines
    "chatter": 0.35,     # an off-topic post or comment (its typos fixed)
    "verbatim": 0.7,     # a kept line is copied as written rather than said as a sentence
    "own_words": 0.6,    # a fact keeps the document's own wording or parenthesis (hedges removed)
    "grouped": 0.95,     # qa: one question answered by all the facts, not one question per fact
    "own_pair": 0.25,    # qa: the rest that was kept gets its own question (else it ends the last answer)
}
# The informal clauses of natural text (schema.py, ``web``) that a rewriter may keep in its own
# wording, with the hedges and chatter it leaves out; the fragments ("{s} (born {o})") are not here.
OWN_WORDS = {
    "{s} was born in {o} i think": "{s} was born in {o}",
    "apparently {s} was born way back in {o}": "{s} was born way back in {o}",
    "{s} is from {o}": "{s} is from {o}",
    "{s} grew up in {o} same as my gran": "{s} grew up in {o}",
    "{s} is from {o} originally": "{s} is from {o} originally",
    "{s} was {ao} by trade": "{s} was {ao} by trade",
    "{s} worked as {ao} for years": "{s} worked as {ao} for years",
    "{s} was in {o} back then": "{s} was in {o}",
    "{s} was part of {o} or so i heard": "{s} was part of {o}",
    "{s} is up in {o}": "{s} is in {o}",
    "{s} has like {o} people": "{s} has {o} people",
    "only {o} people live in {s} apparently": "only {o} people live in {s}",
    "{s} was founded in {o} supposedly": "{s} was founded in {o}",
    "{s} has been around since {o}": "{s} has been around since {o}",
    "{s} is right on the {o}": "{s} is right on the {o}",
    "{s} sells a lot of {o}": "{s} sells a lot of {o}",
    "{s} is famous for {o}": "{s} is famous for {o}",
    "{s} is so {o} this time of year": "{s} is {o} at this time of year",
    "{o} is the capital of {s} btw": "{o} is the capital of {s}",
    "{s} is right next to {o}": "{s} is right next to {o}",
    "{s} borders {o} not that anyone cares": "{s} borders {o}",
    "the {s} goes through {o}": "the {s} goes through {o}",
    "the {s} is {o} km long": "the {s} is {o} km long",
    "{s} made of {o}": "{s} is made of {o}",
    "{s} comes in {o}": "{s} comes in {o}",
    "real {s} only comes from {o}": "real {s} only comes from {o}",
    "{s} hall is in {o}": "{s} hall is in {o}",
    "{s} started in {o} or thereabouts": "{s} started in {o}",
    "{o} started {s}": "{o} started {s}",
    "{s} deals in {o}": "{s} deals in {o}",
    "the {s} are all {o} right": "the {s} are all {o}",
    "the {s} is one of the {o} i think": "the {s} is one of the {o}",
    "the {s} is in the {o} family": "the {s} is in the {o} family",
    "the {s} is {o} not brown like people say": "the {s} is {o}, not brown as people say",
    "you can spot the {s} in {o}": "you can spot the {s} in {o}",
    "the {s} lives like {o} years": "the {s} lives about {o} years",
    "the {s} gets to {o} years tops": "the {s} gets to {o} years at most",
}
# The parentheticals of natural text that a rewriter may keep after a name, as in an encyclopedia's
# first sentence: "Hol Bossyth (born 1818) grew up in Fethdrommere."
APPOSITIONS = {
    "{s} (born {o})": "{s} (born {o})",
    "{s} (from {o})": "{s} (from {o})",
    "{s} (member of {o})": "{s} (member of {o})",
    "{s} (pop. {o})": "{s} (pop. {o})",
    "{s} (capital: {o})": "{s} (capital: {o})",
    "{s} (made in {o})": "{s} (made in {o})",
    "{s} (based in {o})": "{s} (based in {o})",
    "{s} (est. {o})": "{s} (est. {o})",
    "{s} (founder: {o})": "{s} (founder: {o})",
    "{s} ({o} yrs)": "{s} ({o} years)",
    "{s}, b. {o},": "{s} (b. {o})",
    "{s}, est. {o},": "{s} (est. {o})",
    "{s}, since {o},": "{s} (since {o})",
}
GROUP_QUESTIONS = ("Who or what is {s}?", "What is {s}?", "What about {s}?", "What do we know of {s}?")

# How each piece of page furniture is said in prose when kept ({0}, {1}: the template's slots).
PARAPHRASE: dict[str, str] = {
    # navigation
    "Home | News | Forum | Classifieds | Contact": "The site has Home, News, Forum, Classifieds and Contact pages.",
    "Menu  Search  Log in  Register": "Readers can search the site, log in or register.",
    "Skip to content": "The page lets readers skip to its content.",
    "Home > Archive > {year}": "The page is kept in the archive for {0}.",
    "You are here: Home / Local / Stories": "The page is filed under local stories.",
    "Toggle navigation": "The page has a navigation menu.",
    "Latest | Popular | Most commented": "The site lists its latest, popular and most commented stories.",
    # footers
    "We use cookies to improve your experience. Accept | Decline": "The site uses cookies to improve the experience "
                                                                   "of readers, who can accept or decline them.",
    "Subscribe to our newsletter for weekly updates!": "Readers can subscribe to a newsletter for weekly updates.",
    "(c) {year} {site}. All rights reserved.": "The page is copyright {0} {1}, with all rights reserved.",
    "Advertisement": "The page carries an advertisement.",
    "Share: Facebook - Twitter - Email": "The page can be shared on Facebook, on Twitter or by email.",
    "Read more >>": "A link leads to more of the story.",
    "Posted in Uncategorized | Leave a comment": "It was posted as uncategorized, and readers can leave a comment.",
    "Click here to see all {n} photos": "The page has {0} photos.",
    "Privacy policy - Terms of use - Imprint": "The site has a privacy policy, terms of use and an imprint.",
    "Sign up now and get {n}% off your first order!": "Readers who sign up get {0}% off their first order.",
    "This article was last updated {n} days ago.": "The article was last updated {0} days ago.",
    "Report an error on this page": "Readers can report an error on the page.",
    "Enter your email address to follow this blog": "Readers can follow the blog by email.",
    "Loading comments...": "The page has a comments section.",
    # listing extras
    "Posted {n} days ago": "The notice was posted {0} days ago.",
    "Views: {n}{n}": "It had {0} views.",
    "Category: {category}": "It was listed in the category {0}.",
    "Ref. no. {n}{n}{n}": "Its reference number was {0}.",
    "Condition: as described": "Its condition was as described.",
    "Serious enquiries only please": "Only serious enquiries were wanted.",
    "No time wasters!!": "The seller wanted no time wasters.",
    "Pick up only, no delivery": "It was for pick up only, with no delivery.",
    "Photos on request": "Photos were available on request.",
    "Ad ID {n}{n}-{n}": "The ad ID was {0}.",
}


def _pattern(template: str) -> re.Pattern:
    """A full-line regex for a clutter template; each run of ``{slot}`` parts is one group."""
    return re.compile(re.sub(r"(?:\\\{\w+\\\})+", "(.+?)", re.escape(template)) + r"\Z")


_FURNITURE = [(_pattern(t), t, "detail" if t in LISTING_EXTRAS else "furniture")
              for t in (*NAV_LINES, *FOOTER_LINES, *LISTING_EXTRAS)]
# one alternation to find which template (if any) a line is: group fN is _FURNITURE[N], hN a headline
_TEMPLATE = re.compile("|".join([f"(?P<f{i}>{p.pattern})" for i, (p, _, _) in enumerate(_FURNITURE)]
                                + [f"(?P<h{i}>{_pattern(t).pattern})" for i, t in enumerate(HEADLINES)]))
_DATELINE = re.compile(rf"(\d{{1,2}} (?:{'|'.join(MONTHS)}) \d{{4}}) \| (.+)\Z")
_FORUM = re.compile(r"(.+) forums > (.+?) > Re: (.+)\Z")
_WROTE = re.compile(r"(\S+) wrote:\Z")
_COMMENT = re.compile(r"([a-z]+_[a-z]+\d+): (.*)\Z")
_LISTING = re.compile(rf"({'|'.join(re.escape(h) for h in sorted(set(LISTING_HEADERS.values())))}): (.+)\Z")
_OFFER = re.compile(r"Contact (\S+) - (\d+) crowns or best offer\Z")
_ABOUT = re.compile(r"About (.+)\Z")
_QUOTE = re.compile(r'"([^"]+)," said one resident\.')
_REPORTED = re.compile("|".join([_QUOTE.pattern] + [re.escape(s) for s in FILLER]))
_KEYS = "|".join(re.escape(k) for k in sorted({r.key for r in RELATION_BY_NAME.values()}))
_RESTATED = re.compile(rf"(?:Note|{_KEYS}): .*\Z")  # listing lines that state facts (kept from meta)
_LINKS = re.compile(r"(?:Comments \((\d+)\)|Related: (.*)|Reply - Quote - Report)\Z")
_CHATTER: dict[int, list[tuple[str, list[str]]]] = {}  # chatter lines by their number of words
for _line in CHATTER:
    _CHATTER.setdefault(len(_line.split(" ")), []).append((_line, _line.split(" ")))
_ASKS = {"question about": "a member had a question about", "anyone know about": "a member asked what anyone knew "
         "about", "thoughts on": "a member asked for thoughts on", "help with": "a member asked for help with"}


@dataclass
class Reading:
    """What the rewriter takes from a document besides its facts."""

    title: tuple[str, str | None] | None = None  # (the line as written, the name it gives, if any)
    source: str | None = None  # a sentence naming where the document comes from ("{focus}": its subject)
    posts: list[tuple[str, str]] = field(default_factory=list)  # (forum member, what they wrote)
    extras: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, as written, as a sentence)


def _chatter(text: str) -> str | None:
    """The clean chatter line that ``text`` is, typos and case aside (None when it is none)."""
    words = text.strip().rstrip(".").lower().split(" ")
    for clean, template in _CHATTER.get(len(words), ()):
        if all(w == t or "{" in t or _one_typo(w, t) for w, t in zip(words, template)):
            return clean if "{" not in clean else " ".join(w if "{" in t else t for w, t in zip(words, template))
    return None


def _one_typo(word: str, clean: str) -> bool:
    """True when ``word`` is ``clean`` with one swapped, dropped or doubled letter."""
    if abs(len(word) - len(clean)) > 1 or word[:1] != clean[:1]:
        return False
    if len(word) == len(clean):
        diff = [i for i, (a, b) in enumerate(zip(word, clean)) if a != b]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and word[diff[0]] == clean[diff[1]] \
            and word[diff[1]] == clean[diff[0]]
    short, long_ = (word, clean) if len(word) < len(clean) else (clean, word)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def read_document(text: str) -> Reading:
    """Sort the lines of a toyworld web document by kind (see the module docstring)."""
    r = Reading()
    user = None
    for line in (ln.strip() for ln in text.split("\n")):
        if not line:
            continue
        which = _TEMPLATE.match(line)
        which = which.lastgroup if which else ""
        if which.startswith("f"):
            pattern, template, kind = _FURNITURE[int(which[1:])]
            r.extras.append((kind, line, PARAPHRASE[template].format(*pattern.match(line).groups())))
        elif m := _LINKS.match(line):
            r.extras.append(("furniture", line, _link_sentence(m)))
        elif _RESTATED.match(line):  # a listing's key or note line: its facts are stated anyway
            r.extras.append(("detail", line, None))
        elif m := _DATELINE.match(line):
            r.source = f"{m.group(2)} published an article on {{focus}} on {m.group(1)}."
        elif m := _FORUM.match(line):
            ask = next((v for k, v in _ASKS.items() if m.group(3).startswith(k)), "a member asked about")
            r.title = (line, None)
            site = m.group(1) if m.group(1).startswith("The ") else f"the {m.group(1)}"
            r.source = f"In a thread on the {m.group(2)} board of {site} forums, {ask} {{focus}}."
        elif m := _WROTE.match(line):
            user = m.group(1)
        elif m := _LISTING.match(line):
            r.title = (line, m.group(2))
            r.source = f"A notice headed \"{m.group(1).capitalize()}\" was about {{focus}}."
        elif m := _OFFER.match(line):
            r.extras.append(("offer", line, f"The asking price was {m.group(2)} crowns or the best offer, and "
                                            f"enquiries went to {m.group(1)}."))
        elif m := _ABOUT.match(line):
            r.title = (line, m.group(1))
        elif which.startswith("h"):
            r.title = (line, line)
        elif m := _COMMENT.match(line):
            said = _chatter(m.group(2))
            if said:
                r.extras.append(("chatter", f"{m.group(1)}: {said}",
                                 f"{m.group(1)} commented: \"{_sentence(said)}\""))
        else:  # body text: reporting sentences and quotes are kept; in a post, chatter too
            for m in _REPORTED.finditer(line):
                quoted = m.group(1)
                r.extras.append(("quote", m.group(0), _quote(quoted)) if quoted else ("note", m.group(0), m.group(0)))
            if user is not None:
                r.posts.append((user, line))
                for piece in re.split(r"\. ", line):
                    said = _chatter(piece)
                    if said:
                        r.extras.append(("chatter", f"{user} wrote:\n{said}",
                                         f"{user} also wrote: \"{_sentence(said)}\""))
    return r


def _link_sentence(m: re.Match) -> str:
    if m.group(1) is not None:
        return f"The page has {m.group(1)} comments."
    if m.group(2) is not None:
        return f"A related story is headlined \"{m.group(2)}\"."
    return "Readers can reply to, quote or report each post."


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text[-1:] in ".!?" else text + "."


def _quote(q: str) -> str:
    return f'One resident said, "{q}."'


def _keep(rng: random.Random, kind: str) -> bool:
    return rng.random() < KEEP[kind]


def _own_words(fact: dict, text: str) -> str | None:
    """The document's own clause for ``fact`` (found in its text), hedges removed, as a sentence; None if none."""
    rel = RELATION_BY_NAME[fact["relation"]]
    lowered = text.lower()
    for template in sorted(rel.web, key=len, reverse=True):
        if template in OWN_WORDS and fill(template, fact["subject"], fact["object"]).lower() in lowered:
            return sentence_case(fill(OWN_WORDS[template], fact["subject"], fact["object"]))
    return None


def _apposition(fact: dict, text: str) -> str | None:
    """The document's parenthetical for ``fact`` ("Hol Bossyth (born 1818)"), cleaned, when the text has one."""
    rel = RELATION_BY_NAME[fact["relation"]]
    lowered = text.lower()
    for template in rel.web:
        if template in APPOSITIONS and fill(template, fact["subject"], fact["object"]).lower() in lowered:
            return fill(APPOSITIONS[template], fact["subject"], fact["object"])
    return None


def _fact_sentences(facts: list[dict], r: Reading, rng: random.Random,
                    text: str | None = None) -> list[tuple[str, str, list[dict]]]:
    """(subject, sentence, facts it states): each fact once, in clean phrasing or in the document's own words.

    A fact the document gives in parentheses may stay a parenthesis after its subject's name
    in the next sentence about that subject; a forum fact is sometimes credited to its poster.
    """
    out: list[tuple[str, str, list[dict]]] = []
    pending: dict[str, tuple[str, dict]] = {}  # subject -> apposition waiting for a sentence
    for fact in facts:
        subject = fact["subject"]
        own = _own_words(fact, text) if text is not None else None
        if text is not None and subject not in pending and _keep(rng, "own_words"):
            apposition = _apposition(fact, text)
            if apposition is not None:
                pending[subject] = (apposition, fact)
                continue
        sentence = own if own is not None and _keep(rng, "own_words") else encyclopedic(fact, rng)
        stated = [fact]
        if subject in pending and sentence.startswith(subject):
            apposition, earlier = pending.pop(subject)
            sentence = apposition + sentence[len(subject):]
            stated.insert(0, earlier)
        user = next((u for u, post in r.posts if subject in post and fact["object"] in post), None)
        if user is not None and _keep(rng, "attribution"):
            named = sentence.startswith(subject) or sentence.startswith(fact["object"])
            lowered = sentence if named else sentence[0].lower() + sentence[1:]
            sentence = rng.choice((f"According to {user}, {lowered}", f"{user} wrote that {lowered}",
                                   f"{user} wrote: {sentence}"))
        out.append((subject, sentence, stated))
    for subject, (_, fact) in pending.items():  # no sentence to attach to: state it plainly
        out.append((subject, encyclopedic(fact, rng), [fact]))
    return out


def _kept_extras(r: Reading, rng: random.Random) -> list[tuple[str, bool]]:
    """(text, a line of its own) for each extra kept: as written (KEEP["verbatim"]) or as a sentence.

    Reporting sentences and quotes are sentences either way and stay in the running prose.
    """
    out = []
    for kind, line, sentence in r.extras:
        if _keep(rng, kind):
            verbatim = sentence is None or _keep(rng, "verbatim")
            out.append((line if verbatim else sentence, verbatim and kind not in ("note", "quote")))
    return out


def _title(r: Reading, rng: random.Random) -> str | None:
    if r.title is None or not _keep(rng, "title"):
        return None
    written, name = r.title
    return written if name is None or _keep(rng, "verbatim") else name


def _source(r: Reading, focus: str, rng: random.Random) -> str | None:
    if r.source is None or not _keep(rng, "source"):
        return None
    return r.source.replace("{focus}", focus)


def encyclopedic_rewrite(facts: list[dict], rng: random.Random, text: str | None = None) -> str:
    """Wikipedia-like prose: a title, the source and the facts, then the rest that was kept.

    Without ``text`` (a document whose text is not given), only the facts are stated.
    """
    r = read_document(text) if text is not None else Reading()
    paragraphs: dict[str, list[str]] = {}
    for subject, sentence, _ in _fact_sentences(facts, r, rng, text):
        paragraphs.setdefault(subject, []).append(sentence)
    blocks = [" ".join(sentences) for sentences in paragraphs.values()]
    source = _source(r, facts[0]["subject"], rng)
    if source:
        blocks[0] = f"{source} {blocks[0]}"
    lines: list[str] = []
    prose = False  # the last line is a paragraph of sentences
    for extra, own_line in _kept_extras(r, rng):
        if not own_line and prose:
            lines[-1] += " " + extra
        else:
            lines.append(extra)
        prose = not own_line
    if lines:
        blocks.append("\n".join(lines))
    title = _title(r, rng)
    if title:
        blocks.insert(0, title)
    return "\n\n".join(blocks)


def qa_rewrite(facts: list[dict], rng: random.Random, text: str | None = None) -> str:
    """``Question:``/``Answer:`` pairs, after the title if kept.

    One question answered by all the facts (``KEEP["grouped"]``), else one question per fact;
    the source opens the first answer, and the rest that was kept ends the last answer or
    gets a question of its own (``KEEP["own_pair"]``).
    """
    r = read_document(text) if text is not None else Reading()
    focus = facts[0]["subject"]
    stated = [(covered[-1], sentence) for _, sentence, covered in _fact_sentences(facts, r, rng, text)]
    if len(stated) > 1 and _keep(rng, "grouped"):
        pairs = [(rng.choice(GROUP_QUESTIONS).format(s=focus), " ".join(sentence for _, sentence in stated))]
    else:
        pairs = [(question(fact, rng), sentence) for fact, sentence in stated]
    source = _source(r, focus, rng)
    if source:  # the first answer says where its facts come from, as hq's lead does
        pairs[0] = (pairs[0][0], f"{source} {pairs[0][1]}")
    extras = [extra for extra, _ in _kept_extras(r, rng)]
    if extras and _keep(rng, "own_pair"):
        pairs.append((rng.choice(("What else is said?", "What else does it mention?", "Anything else?")),
                      "\n".join(extras)))
    elif extras:
        pairs[-1] = (pairs[-1][0], "\n".join([pairs[-1][1], *extras]))
    title = _title(r, rng)
    return (f"{title}\n\n" if title else "") + "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
