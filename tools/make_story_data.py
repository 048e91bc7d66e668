#!/usr/bin/env python3
"""Writes examples/data/stories_{train,validation}.jsonl (plain "text" rows) and
examples/data/stories_sft_{train,validation}.jsonl (prompt/completion rows): short
TinyStories-style stories from templates, for the stories260K examples.
Deterministic: python3 tools/make_story_data.py"""
import json
import random

NAMES = ["Tom", "Lily", "Ben", "Sue", "Max", "Mia", "Sam", "Anna", "Tim", "Lucy"]
ANIMALS = ["cat", "dog", "bird", "bunny", "frog", "duck", "fox", "bear"]
THINGS = ["ball", "kite", "box", "hat", "boat", "cake", "book", "car"]
COLORS = ["red", "blue", "green", "yellow", "big", "little", "shiny", "soft"]
PLACES = ["park", "garden", "house", "forest", "beach", "school"]
FEELINGS = ["happy", "sad", "scared", "excited", "tired", "proud"]


def story(rng):
    n, a, t, c, p, f = (rng.choice(x) for x in (NAMES, ANIMALS, THINGS, COLORS, PLACES, FEELINGS))
    friend = rng.choice([x for x in NAMES if x != n])
    return (f"Once upon a time, there was a {c} {a} named {n}. {n} liked to play in the {p}. "
            f"One day, {n} found a {t}. {n} was very {f}. {n} showed the {t} to {friend}. "
            f"They played with the {t} all day. At the end of the day, {n} and {friend} were happy.")


def sft_pair(rng):
    n, a, t, p = (rng.choice(x) for x in (NAMES, ANIMALS, THINGS, PLACES))
    prompt = f"Write a short story about a {a} named {n} who finds a {t}."
    completion = (f" Once upon a time, there was a {a} named {n}. One day, {n} went to the {p} and found a {t}. "
                  f"{n} was very happy and played with the {t} all day.")
    return {"prompt": prompt, "completion": completion}


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    rng = random.Random(20261129)
    write("examples/data/stories_train.jsonl", [{"text": story(rng)} for _ in range(200)])
    write("examples/data/stories_validation.jsonl", [{"text": story(rng)} for _ in range(40)])
    write("examples/data/stories_sft_train.jsonl", [sft_pair(rng) for _ in range(200)])
    write("examples/data/stories_sft_validation.jsonl", [sft_pair(rng) for _ in range(40)])


if __name__ == "__main__":
    main()
