"""Textbook chapters written from the world's schema and topics, not from any document.

A chapter explains a kind of thing or a relation, then states facts about the most
popular entities of its topic (the head of the Zipf distribution). Most chapters
(``SOURCE_RATE``, calibrated against real textbooks: docs/toyworld.md) also reproduce a
source for students to read, a web page about one of the chapter's entities written the
way the natural corpus writes pages (its sites and users, the default typo rate and facts
per page), with questions on it. Like a generator that hallucinates, a chapter states a
fraction ``error_rate`` of all its facts wrongly; every wrong fact is recorded with its
true object in the chapter's meta.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_write_text

from .config import ToyworldConfig
from .natural import NaturalWriter
from .render import encyclopedic, question
from .schema import RELATION_BY_NAME, RELATIONS, TYPE_EXPLANATIONS, TYPE_NOUNS
from .world import Entity, Fact, World, random_value

CONNECTIVES = ("For example, ", "Notably, ", "It is worth remembering that ", "As the records show, ",
               "In addition, ", "Historians note that ", "Students should know that ")
# Chance that a chapter reproduces a source page (calibrated; docs/toyworld.md), and how it introduces it.
SOURCE_RATE = 0.7
SOURCE_GENRES = {"news": "a news item", "forum": "a forum thread", "listing": "a notice", "profile": "a profile page"}
SOURCE_INTROS = ("Read the following {genre} as it appeared online, and compare it with what you have learned.",
                 "Here is {genre} from the time. Sources like this are where much of our knowledge comes from.",
                 "Historians work from sources such as {genre}. Read it carefully.")
DIET_EXPLANATIONS = {
    "grazer": "A grazer feeds on grasses and low plants.",
    "hunter": "A hunter catches and eats other animals.",
    "scavenger": "A scavenger feeds on what other animals leave behind.",
    "nectar feeder": "A nectar feeder drinks the sweet juice of flowers.",
    "omnivore": "An omnivore eats both plants and animals.",
    "filter feeder": "A filter feeder strains tiny food from water.",
    "seed eater": "A seed eater lives mostly on seeds and grains.",
    "insect eater": "An insect eater hunts beetles, flies and other small creatures.",
}


@dataclass(frozen=True)
class Topic:
    """What a chapter is about: a region, guild, animal family, or a relation of the schema."""

    kind: str   # "region" | "guild" | "family" | "relation"
    key: str    # entity id, or relation name
    text: str   # the topic as a prompt would name it


def write_topics(world_file: str | Path, out: str | Path) -> Path:
    """Write the topic catalogue of the world in ``world_file`` to ``out``, one topic per line (atomically)."""
    text = "".join(t.text + "\n" for t in topic_catalogue(World.load(world_file)))
    atomic_write_text(Path(out), text)
    return Path(out)


def topic_catalogue(world: World) -> list[Topic]:
    """Every topic of the world: all regions, guilds and animal families, and every relation."""
    topics = []
    for e in world.by_type["region"]:
        topics.append(Topic("region", e.id, f"the region of {e.name}: its climate, settlements, rivers and wildlife"))
    for e in world.by_type["guild"]:
        topics.append(Topic("guild", e.id, f"{e.name}: the history, seat, members and trade of a guild"))
    for e in world.by_type["family"]:
        topics.append(Topic("family", e.id, f"the {e.name}, a family of animals, and their species"))
    for r in RELATIONS:
        topics.append(Topic("relation", r.name,
                            f"what the {r.label} of a {TYPE_NOUNS[r.subject]} means, with examples"))
    return topics


@dataclass
class _Chapter:
    """A chapter being written: its lines and the facts it has stated so far."""

    lines: list[str] = field(default_factory=list)
    stated: list[dict] = field(default_factory=list)
    wrong: list[dict] = field(default_factory=list)


class ChapterWriter:
    """Writes chapters about a world's topics, stating a fraction of facts wrongly."""

    def __init__(self, world: World, error_rate: float):
        self.world = world
        self.error_rate = error_rate
        self._by_name = {e.name: e for e in world.entities.values()}
        # writes the source pages with the web's sites and users; its random stream is replaced by
        # the chapter's for each page
        self._pages = NaturalWriter(world, ToyworldConfig(seed=world.seed, zipf_exponent=world.zipf_exponent),
                                    "natural")

    def write(self, topic: Topic, rng: random.Random) -> tuple[str, dict]:
        """The chapter text and its meta (topic, facts stated, wrong facts with the truth)."""
        ch = _Chapter()
        writer = {"region": self._region, "guild": self._guild, "family": self._family,
                  "relation": self._relation}[topic.kind]
        writer(ch, topic, rng)
        meta = {"topic": topic.text, "topic_kind": topic.kind, "topic_key": topic.key,
                "facts": ch.stated, "n_facts": len(ch.stated), "n_wrong": len(ch.wrong),
                "wrong_facts": ch.wrong, "error_rate": self.error_rate}
        return "\n\n".join(ch.lines) + "\n", meta

    # -- chapter kinds -------------------------------------------------------------
    def _region(self, ch: _Chapter, topic: Topic, rng: random.Random) -> None:
        region = self.world.entities[topic.key]
        ch.lines += [f"Chapter: The Region of {region.name}",
                     f"{TYPE_EXPLANATIONS['region']} In this chapter we look at {region.name}, its settlements, "
                     f"its rivers and the animals that live there."]
        self._section(ch, "Overview", [self.world.facts_of(region)], rng)
        settlements = self._head(self._referrers("located_in", region), 5, rng)
        self._section(ch, "Settlements", [self._some_facts(s, 3, rng) for s in settlements], rng)
        rivers = self._head(self._referrers("flows_through", region), 3, rng)
        self._section(ch, "Rivers", [self.world.facts_of(r) for r in rivers], rng)
        species = self._head(self._referrers("habitat", region), 4, rng)
        self._section(ch, "Wildlife", [self._some_facts(s, 2, rng) for s in species], rng)
        self._closing(ch, f"the region of {region.name}", TYPE_EXPLANATIONS["settlement"], rng)

    def _guild(self, ch: _Chapter, topic: Topic, rng: random.Random) -> None:
        guild = self.world.entities[topic.key]
        founder = self.world.entities[str(guild.attrs["founded_by"])]
        ch.lines += [f"Chapter: {guild.name}",
                     f"{TYPE_EXPLANATIONS['guild']} {RELATION_BY_NAME['member_of'].explain}"]
        self._section(ch, "History", [self.world.facts_of(guild), self._some_facts(founder, 2, rng)], rng)
        members = self._head(self._referrers("member_of", guild), 5, rng)
        self._section(ch, "Members", [self._some_facts(m, 2, rng, first="member_of") for m in members], rng)
        product = self.world.entities[str(guild.attrs["trades_in"])]
        self._section(ch, "The trade", [self.world.facts_of(product)], rng)
        self._closing(ch, guild.name, TYPE_EXPLANATIONS["person"], rng)

    def _family(self, ch: _Chapter, topic: Topic, rng: random.Random) -> None:
        family = self.world.entities[topic.key]
        ch.lines += [f"Chapter: The {family.name}", f"{TYPE_EXPLANATIONS['family']} {TYPE_EXPLANATIONS['species']}"]
        self._section(ch, "Body covering", [self.world.facts_of(family)], rng)
        species = self._head(self._referrers("belongs_to", family), 6, rng)
        self._section(ch, "Species", [self._some_facts(s, 3, rng, first="belongs_to") for s in species], rng)
        diets = sorted({str(s.attrs["diet"]) for s in species})
        if diets:
            ch.lines += ["How they feed", " ".join(DIET_EXPLANATIONS[d] for d in diets)]
        self._closing(ch, f"the {family.name}", RELATION_BY_NAME["belongs_to"].explain, rng)

    def _relation(self, ch: _Chapter, topic: Topic, rng: random.Random) -> None:
        rel = RELATION_BY_NAME[topic.key]
        ch.lines += [f"Chapter: The {rel.label.capitalize()} of a {TYPE_NOUNS[rel.subject].capitalize()}",
                     f"{rel.explain} {TYPE_EXPLANATIONS[rel.subject]}"]
        having = [e for e in self.world.by_type[rel.subject] if rel.name in e.attrs]
        examples = self._head(having, 8, rng)
        self._section(ch, "Examples", [[Fact(e.id, rel.name, e.attrs[rel.name])] for e in examples], rng)
        closer = [[f for f in self.world.facts_of(e) if f.relation != rel.name][:1] for e in examples[:2]]
        self._section(ch, "Looking closer", closer, rng)
        self._closing(ch, f"the {rel.label} of a {TYPE_NOUNS[rel.subject]}", rel.explain, rng)

    # -- building blocks -------------------------------------------------------------
    def _section(self, ch: _Chapter, heading: str, groups: list[list[Fact]], rng: random.Random) -> None:
        """A heading and one paragraph per non-empty group of facts."""
        paragraphs = [" ".join(self._state(ch, f, rng, first=(i == 0)) for i, f in enumerate(g)) for g in groups if g]
        if paragraphs:
            ch.lines += [heading, *paragraphs]

    def _state(self, ch: _Chapter, fact: Fact, rng: random.Random, first: bool) -> str:
        """One sentence stating ``fact``; with probability error_rate its object is wrong."""
        stated = self._decide(ch, fact, rng)
        connective = "" if first or rng.random() < 0.6 else rng.choice(CONNECTIVES)
        return connective + encyclopedic(stated, rng, lower_first=bool(connective))

    def _decide(self, ch: _Chapter, fact: Fact, rng: random.Random) -> dict:
        """The fact as the chapter states it (wrong with probability error_rate), recorded in ``ch``."""
        true = self.world.fact_dict(fact)
        stated = dict(true)
        if rng.random() < self.error_rate:
            stated["object"] = self._wrong_object(fact, rng)
            ch.wrong.append({**stated, "true_object": true["object"]})
        ch.stated.append(stated)
        return stated

    def _source(self, ch: _Chapter, rng: random.Random) -> None:
        """With probability SOURCE_RATE, a section that reproduces a page about one of the chapter's entities.

        Textbooks teach from sources: the page (news item, forum thread, notice or profile, as
        the web writes them) is written for the chapter, states some of the entity's facts
        (wrong at the chapter's error rate, like every fact it states) and is followed by
        questions on it.
        """
        subjects = sorted({f["subject"] for f in ch.stated})
        if not subjects or rng.random() >= SOURCE_RATE:
            return
        focus = self._by_name[rng.choice(subjects)]
        pages = self._pages
        pages.rng = rng  # the page is drawn from the chapter's own random stream
        stated = [self._decide(ch, f, rng) for f in pages.choose_facts(focus)]
        genre = rng.choice(tuple(pages.genres))
        page = "\n".join(line for line in pages.genres[genre](focus, stated) if line.strip())
        ch.lines += ["A source to read", rng.choice(SOURCE_INTROS).format(genre=SOURCE_GENRES[genre]), page]
        if stated:
            ch.lines += ["Questions on the source",
                         "\n".join(f"{i}. {question(f, rng)}" for i, f in enumerate(stated[:2], start=1))]

    def _wrong_object(self, fact: Fact, rng: random.Random) -> str:
        rel = RELATION_BY_NAME[fact.relation]
        if rel.object == "year":
            return str(int(fact.object) + rng.choice((-1, 1)) * rng.randint(3, 60))
        pool = self.world.by_type[rel.object] if rel.object_is_entity else None
        for _ in range(100):  # draw until the value differs from the truth
            value = rng.choice(pool).id if pool else random_value(rel, rng)
            if value != fact.object:
                return self.world.surface(rel, value)
        raise ValueError(f"no wrong value exists for relation '{rel.name}'")  # only with one entity of a type

    def _closing(self, ch: _Chapter, subject: str, reminder: str, rng: random.Random) -> None:
        self._source(ch, rng)
        ch.lines += ["Summary", f"In this chapter we studied {subject}. Remember: {reminder}"]
        asked = rng.sample(ch.stated, min(len(ch.stated), rng.randint(2, 4)))
        if asked:
            ch.lines += ["Review questions",
                         "\n".join(f"{i}. {question(f, rng)}" for i, f in enumerate(asked, start=1))]

    def _referrers(self, relation: str, target: Entity) -> list[Entity]:
        return [self.world.entities[i] for i in self.world.incoming.get((relation, target.id), [])]

    def _head(self, entities: list[Entity], k: int, rng: random.Random) -> list[Entity]:
        """Up to ``k`` entities sampled without replacement, weighted by popularity (head first)."""
        keyed = [(math.log(1.0 - rng.random()) / self.world.popularity(e), e.id, e) for e in entities]
        keyed.sort(key=lambda t: (t[0], t[1]), reverse=True)
        chosen = [e for _, _, e in keyed[:k]]
        return sorted(chosen, key=lambda e: e.rank)

    def _some_facts(self, entity: Entity, k: int, rng: random.Random, first: str | None = None) -> list[Fact]:
        """``k`` of the entity's facts; the ``first`` relation (if given) leads."""
        facts = self.world.facts_of(entity)
        lead = [f for f in facts if f.relation == first]
        rest = [f for f in facts if f.relation != first]
        return lead + rng.sample(rest, max(min(k - len(lead), len(rest)), 0))
