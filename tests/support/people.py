"""Actors for the pure policy tests: plain values shaped like a user (id, role, flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Person:
    id: int
    role: str
    can_enroll: bool = True
    can_override_enrollment_rules: bool = False


ADMIN, ANN, BEA, VIC = (
    Person(1, "admin"),
    Person(2, "member"),
    Person(3, "member"),
    Person(4, "viewer"),
)
