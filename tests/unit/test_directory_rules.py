"""What the directory accepts (usernames, groups, key=value updates) and CSV reading."""

from __future__ import annotations

import io

import pytest

from postroom.errors import DirectoryError
from postroom.users.csvimport import Problem, Row, read_users
from postroom.users.rules import (
    check_email,
    check_group_name,
    check_username,
    parse_updates,
    split_groups,
)


@pytest.mark.parametrize("name", ["ada", "a.lovelace", "ada@lab", "u42", "_svc", "x+y-z"])
def test_usernames_of_letters_digits_and_punctuation_are_accepted(name: str) -> None:
    assert check_username(f"  {name} ") == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "cannot be empty"),
        ("42", "is a number"),
        ("ada lovelace", "may hold only"),
        ("-ada", "may hold only"),
        ("ada\nroot", "may hold only"),
        ("a" * 65, "at most 64"),
    ],
)
def test_bad_usernames_are_refused_naming_why(name: str, why: str) -> None:
    with pytest.raises(DirectoryError, match=why):
        check_username(name)


def test_group_names_may_have_spaces_but_not_separators() -> None:
    assert check_group_name("  Imaging   Facility ") == "Imaging Facility"
    for bad in ("a;b", "a|b", "a,b", "7", ""):
        with pytest.raises(DirectoryError):
            check_group_name(bad)
    assert split_groups("lab; imaging|lab ;") == ("lab", "imaging")


def test_addresses_are_normalised_and_empty_means_none() -> None:
    assert check_email("ada@Bücher.example") == "ada@xn--bcher-kva.example"
    assert check_email("  ") is None
    assert check_email(None) is None
    with pytest.raises(DirectoryError, match="not a valid e-mail address"):
        check_email("ada@")
    with pytest.raises(DirectoryError, match="without a display name"):
        check_email("Ada <ada@example.org>")


def test_updates_are_key_value_pairs_of_known_keys() -> None:
    assert parse_updates(["email=root@university.example"]) == {"email": "root@university.example"}
    assert parse_updates(["name=Ada  Lovelace", "admin=yes", "active=0", "email="]) == {
        "full_name": "Ada Lovelace",
        "admin": True,
        "active": False,
        "email": None,
    }
    with pytest.raises(DirectoryError, match="known key; use active, admin, email"):
        parse_updates(["password=x"])
    with pytest.raises(DirectoryError, match="not true or false"):
        parse_updates(["admin=maybe"])
    with pytest.raises(DirectoryError, match="given twice"):
        parse_updates(["name=a", "full_name=b"])


def read(text: str) -> list[Row | Problem]:
    return list(read_users(io.StringIO(text)))


def test_csv_rows_become_user_values_with_their_line() -> None:
    rows = read(
        "username,name,email,admin,groups\n"
        'ada,"Lovelace, Ada",ada@example.org,true,lab;imaging\n'
        "\n"
        "bob,Bob,,,\n"
    )
    assert [type(r).__name__ for r in rows] == ["Row", "Row"]
    ada, bob = (r for r in rows if isinstance(r, Row))
    assert (ada.line, ada.values.full_name, ada.values.admin) == (2, "Lovelace, Ada", True)
    assert ada.values.groups == ("lab", "imaging")
    assert (bob.line, bob.values.email, bob.values.clear_email, bob.values.admin) == (
        4,
        None,
        True,
        False,
    )


def test_columns_left_out_leave_stored_values_alone() -> None:
    [row] = read("username,email\nada,ada@example.org\n")
    assert isinstance(row, Row)
    assert (row.values.full_name, row.values.admin, row.values.active) == (None, None, None)


def test_bad_rows_are_problems_on_their_own_line() -> None:
    rows = read(
        "username,name,email\n"
        'ada,"Ada\nLovelace",ada@example.org\n'  # a quoted field over two lines
        "12,Twelve,x@example.org\n"
        "bob,Bob,bob@\n"
        "carol,Carol\n"
    )
    problems = [(r.line, r.text) for r in rows if isinstance(r, Problem)]
    assert [line for line, _ in problems] == [4, 5, 6]
    assert "is a number" in problems[0][1]
    assert "bob@" in problems[1][1]
    assert "2 fields, the header names 3" in problems[2][1]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "the file is empty"),
        ("name,email\n", "no username column"),
        ("username,phone\n", "unknown column(s) phone"),
        ("username,name,full_name\n", "named twice"),
    ],
)
def test_a_bad_header_is_one_problem_on_line_1(text: str, why: str) -> None:
    [problem] = read(text)
    assert isinstance(problem, Problem)
    assert problem.line == 1
    assert why in problem.text
