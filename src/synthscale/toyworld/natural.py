"""Noisy, web-like documents about the world: news, forum threads, listings and profiles.

Each document is about one focus entity drawn with Zipf-like popularity, states a few
of its facts (and sometimes a neighbour's), and wraps them in the clutter of web text:
navigation and cookie lines, newsletter pleas, off-topic chatter, lowercase posts and
typos. Typos never touch names or values, so every recorded fact is readable in the text.
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Callable, Iterator

from ..corpus import Document
from .config import ToyworldConfig
from .names import NameMaker
from .render import encyclopedic, informal, misspell, sentence_case
from .schema import RELATION_BY_NAME
from .world import Entity, Fact, World

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
NAV_LINES = ("Home | News | Forum | Classifieds | Contact", "Menu  Search  Log in  Register", "Skip to content",
             "Home > Archive > {year}", "You are here: Home / Local / Stories", "Toggle navigation",
             "Latest | Popular | Most commented")
FOOTER_LINES = ("We use cookies to improve your experience. Accept | Decline",
                "Subscribe to our newsletter for weekly updates!", "(c) {year} {site}. All rights reserved.",
                "Advertisement", "Share: Facebook - Twitter - Email", "Read more >>",
                "Posted in Uncategorized | Leave a comment", "Click here to see all {n} photos",
                "Privacy policy - Terms of use - Imprint", "Sign up now and get {n}% off your first order!",
                "This article was last updated {n} days ago.", "Report an error on this page",
                "Enter your email address to follow this blog", "Loading comments...")
CHATTER = ("anyway the weather here is awful today", "my cat just knocked over a lamp again",
           "does anyone know a good recipe for bean soup", "sorry for the long post",
           "first time posting here so be gentle", "brb dinner", "this forum used to be so much better",
           "edit: fixed the spelling", "thanks in advance", "lol same", "not sure this is the right board",
           "off topic but my internet keeps dropping", "bump", "+1 to what they said",
           "cannot believe it is already {month}", "my neighbour is drilling again at seven in the morning",
           "has anyone tried the new bakery near the market", "i should really be working right now",
           "great thread, bookmarked", "why does my phone keep restarting", "back from holiday, what did i miss",
           "the bus was late again, third time this week", "can a mod move this please",
           "no idea honestly", "source: trust me", "that is what my uncle always said anyway")
QUOTES = ("It has always been like this here", "People come from far away to see it",
          "Nobody expected so much interest", "We are proud of our history", "Things were different back then",
          "I tell everyone who visits", "You have to see it for yourself", "It is not what it used to be")
FILLER = ("The council has not commented yet.", "More details are expected next week.",
          "Visitors describe the place as quiet and friendly.", "Prices at the market went up again this season.",
          "A spokesperson declined to say more.", "The story was first shared by a reader.",
          "Photos from the day are below.", "Several readers wrote in about it.",
          "Opening hours may change during the holidays.", "Parking nearby is limited, so come early.",
          "The road works on the main street should be finished by spring.",
          "Tickets can be bought at the door.", "It was a busy weekend for everyone involved.",
          "We will update this page when we know more.", "Thanks to everyone who sent in pictures.",
          "The weather was kind for once.", "Local schools were closed for the day.",
          "Not everyone agrees, of course.", "Our reporter spent the afternoon asking around.",
          "The debate in the comments got heated quickly.")
LISTING_EXTRAS = ("Posted {n} days ago", "Views: {n}{n}", "Category: {category}", "Ref. no. {n}{n}{n}",
                  "Condition: as described", "Serious enquiries only please", "No time wasters!!",
                  "Pick up only, no delivery", "Photos on request", "Ad ID {n}{n}-{n}")
HEADLINES = ("What's new in {name}", "{name}: a closer look", "Ten things you didn't know about {name}",
             "Locals talk about {name}", "Report: {name} in the spotlight", "Opinion: why {name} matters",
             "A weekend with {name}", "{name} - the story so far", "Letters: more on {name}")
LISTING_HEADERS = {"person": "SERVICES OFFERED", "settlement": "ROOM TO LET", "product": "FOR SALE",
                   "guild": "NOW RECRUITING", "region": "LAND FOR SALE", "river": "BOAT TRIPS",
                   "species": "WILDLIFE TOURS", "family": "NATURE CLUB"}


class NaturalWriter:
    """Writes web-like documents about a world; one instance per corpus (own rng stream)."""

    def __init__(self, world: World, config: ToyworldConfig, stream: str):
        self.world = world
        self.config = config
        self.rng = random.Random(f"toyworld-{stream}-{config.seed}")
        self.entities = sorted(world.entities.values(), key=lambda e: e.rank)
        self.cumulative = list(itertools.accumulate(world.popularity(e) for e in self.entities))
        names = NameMaker(random.Random(f"toyworld-sites-{config.seed}"))
        self.sites = [f"The {names.syllables(2, 2)} {kind}" for kind in ("Gazette", "Courier", "Herald", "Post")]
        self.sites += [f"{names.word()}{tld}" for tld in ("net", "board", "online", "hub")]
        self.users = [f"{names.word()}_{names.word()}{self.rng.randint(1, 99)}" for _ in range(60)]
        self.genres: dict[str, Callable[[Entity, list[dict]], list[str]]] = {
            "news": self._news, "forum": self._forum, "listing": self._listing, "profile": self._profile}

    def documents(self, n: int, id_prefix: str, domain: str = "web") -> Iterator[Document]:
        """``n`` documents with ids ``{id_prefix}-000000``...; facts kept in ``meta["facts"]``."""
        for i in range(n):
            focus = self.sample_entity()
            facts = [self.world.fact_dict(f) for f in self.choose_facts(focus)]
            genre = self.rng.choice(tuple(self.genres))
            lines = self.genres[genre](focus, facts)
            text = "\n".join(line for line in lines if line.strip())
            yield Document(id=f"{id_prefix}-{i:06d}", text=text, domain=domain, source="toyworld",
                           meta={"facts": facts, "genre": genre, "focus": focus.id})

    def sample_entity(self) -> Entity:
        """One entity drawn with Zipf-like popularity."""
        x = self.rng.random() * self.cumulative[-1]
        return self.entities[min(bisect.bisect_right(self.cumulative, x), len(self.entities) - 1)]

    def choose_facts(self, focus: Entity) -> list[Fact]:
        """The facts a document about ``focus`` states: a few of its own, sometimes a neighbour's."""
        cfg, rng = self.config, self.rng
        wanted = rng.randint(cfg.facts_per_doc_min, cfg.facts_per_doc_max)
        own = self.world.facts_of(focus)
        chosen = rng.sample(own, min(wanted, len(own)))
        neighbours = self.world.related(focus) + self.world.referrers(focus, per_relation=3)
        if neighbours and (len(chosen) < wanted or rng.random() < 0.3):
            other = rng.choice(neighbours)
            extra = self.world.facts_of(other)
            chosen += rng.sample(extra, min(max(wanted - len(chosen), 1), len(extra), 2))
        return chosen

    # -- the four genres ---------------------------------------------------------------
    def _news(self, focus: Entity, facts: list[dict]) -> list[str]:
        rng = self.rng
        site = rng.choice(self.sites)
        body = [encyclopedic(f, rng) if rng.random() < 0.6 else sentence_case(informal(f, rng)) for f in facts]
        for _ in range(rng.randint(1, 3)):
            body.insert(rng.randint(1, len(body)), rng.choice(FILLER))
        if rng.random() < 0.5:
            body.insert(rng.randint(1, len(body)), f'"{rng.choice(QUOTES)}," said one resident.')
        day, month = rng.randint(1, 28), rng.choice(MONTHS)
        related = [f"Related: {rng.choice(HEADLINES).format(name=self.sample_entity().name)}"
                   for _ in range(rng.randint(0, 2))]
        return [self._maybe(NAV_LINES, 0.6), rng.choice(HEADLINES).format(name=focus.name),
                f"{day} {month} {rng.randint(1990, 2024)} | {site}", " ".join(body), *related,
                *self._footer(site, rng.randint(1, 3))]

    def _forum(self, focus: Entity, facts: list[dict]) -> list[str]:
        rng, typos = self.rng, self.config.typo_rate
        site = rng.choice(self.sites)
        lines = [f"{site} forums > {rng.choice(('General', 'Local', 'Off topic', 'Ask anything'))} > "
                 f"Re: {rng.choice(('question about', 'anyone know about', 'thoughts on', 'help with'))} {focus.name}"]
        pending = list(facts)
        while pending:
            lowercase = rng.random() < 0.5
            n = min(len(pending), rng.randint(1, 2))
            post = [informal(pending.pop(0), rng, typos, lowercase) for _ in range(n)]
            for _ in range(rng.randint(0, 2)):
                post.insert(rng.randint(0, len(post)), self._chatter(typos))
            text = ". ".join(post)
            lines += [f"{rng.choice(self.users)} wrote:", text if lowercase else sentence_case(text)]
        for _ in range(rng.randint(0, 2)):
            lines += [f"{rng.choice(self.users)} wrote:", self._chatter(typos)]
        lines.append("Reply - Quote - Report")
        return lines + self._footer(site, rng.randint(0, 2))

    def _listing(self, focus: Entity, facts: list[dict]) -> list[str]:
        rng = self.rng
        lines = [f"{LISTING_HEADERS[focus.type]}: {focus.name}"]
        notes = []
        for f in facts:
            if f["subject"] == focus.name:
                lines.append(f"{RELATION_BY_NAME[f['relation']].key}: {f['object']}")
            else:
                notes.append(informal(f, rng, self.config.typo_rate))
        if notes:
            lines.append("Note: " + "; ".join(notes))
        lines.append(f"Contact {rng.choice(self.users)} - {rng.randint(2, 90) * 5} crowns or best offer")
        lines += [self._fill(line, "") for line in rng.sample(LISTING_EXTRAS, rng.randint(1, 3))]
        return lines + self._footer(rng.choice(self.sites), rng.randint(1, 2))

    def _profile(self, focus: Entity, facts: list[dict]) -> list[str]:
        rng = self.rng
        site = rng.choice(self.sites)
        body = [encyclopedic(f, rng) if rng.random() < 0.7 else sentence_case(informal(f, rng)) for f in facts]
        for _ in range(rng.randint(0, 2)):
            body.insert(rng.randint(1, len(body)), rng.choice(FILLER))
        lines = [self._maybe(NAV_LINES, 0.7), f"About {focus.name}", " ".join(body)]
        if rng.random() < 0.6:
            n = rng.randint(1, 3)
            lines.append(f"Comments ({n})")
            lines += [f"{rng.choice(self.users)}: {self._chatter(self.config.typo_rate)}" for _ in range(n)]
        return lines + self._footer(site, rng.randint(1, 3))

    # -- clutter ---------------------------------------------------------------------
    def _footer(self, site: str, n: int) -> list[str]:
        return [self._fill(line, site) for line in self.rng.sample(FOOTER_LINES, n)]

    def _maybe(self, lines: tuple[str, ...], p: float) -> str:
        return self._fill(self.rng.choice(lines), "") if self.rng.random() < p else ""

    def _chatter(self, typo_rate: float) -> str:
        line = self.rng.choice(CHATTER).format(month=self.rng.choice(MONTHS))
        return " ".join(misspell(w, self.rng, typo_rate) for w in line.split(" "))

    def _fill(self, line: str, site: str) -> str:
        return line.format(year=self.rng.randint(2001, 2024), site=site, n=self.rng.randint(2, 60),
                           category=self.rng.choice(("Home", "Goods", "Services", "Misc", "Wanted")))
