"""The roster: which submission is whose, and everything that does not fit, reported."""

import pytest

from gradegrad.errors import ConfigError
from gradegrad.roster import match, parse_roster, read_roster

ROSTER = """\ufeffID,Name,Email,Section,Submission
a1,Alice Liddell,alice@uni.edu,A,
b2,Bob Builder,Bob.B@uni.edu,B,
c3,Carol Chen,carol@uni.edu,A,carol-lab2-repo
d4,Dan Dup,dan@uni.edu,B,
d5,Dan Two,dan@other.edu,B,
z9,Zoe Absent,zoe@uni.edu,B,
"""


def test_columns_are_found_by_name_whatever_their_case_and_a_bom():
    students = parse_roster(ROSTER)
    assert [s.id for s in students] == ["a1", "b2", "c3", "d4", "d5", "z9"]
    assert students[0].name == "Alice Liddell" and students[1].section == "B" and students[2].submission == "carol-lab2-repo"


def test_a_submission_is_matched_by_submission_column_id_email_or_its_local_part():
    m = match(parse_roster(ROSTER), ["A1", "bob.b", "carol-lab2-repo", "alice@uni.edu", "dan", "stranger"])
    owners = {name: s.id for name, s in m.owner}
    assert owners == {"A1": "a1", "bob.b": "b2", "carol-lab2-repo": "c3", "alice@uni.edu": "a1"}
    assert m.unmatched == ("stranger",)
    assert m.ambiguous == (("dan", ("d4", "d5")),)  # fits two students: reported, not guessed
    assert m.several == (("a1", ("A1", "alice@uni.edu")),)  # two submissions for one student: reported
    assert [s.id for s in m.absent] == ["d4", "d5", "z9"]


@pytest.mark.parametrize("text,words", [
    ("name,email\nAda,ada@x\n", "roster.csv:1: the roster needs an `id` column"),
    ("id,name\n,Ada\n", "roster.csv:2: id: empty"),
    ("id,name\nx1,Ada\nX1,Bea\n", "roster.csv:3: id: 'X1' is also on line 2"),
])
def test_mistakes_name_the_row(text, words):
    with pytest.raises(ConfigError) as info:
        parse_roster(text)
    assert words in str(info.value)


def test_reading_a_missing_or_binary_roster_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="roster not found"):
        read_roster(tmp_path / "none.csv")
    (tmp_path / "r.csv").write_bytes(b"id\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_roster(tmp_path / "r.csv")


def test_a_roster_saved_by_a_spreadsheet_with_semicolons_or_tabs_is_read():
    """Excel saves CSV with semicolons where the decimal mark is a comma: that roster used to be refused
    ("needs an `id` column; found: id;name;email;section")."""
    for sep in (";", "\t"):
        text = ROSTER.replace(",", sep).replace("Alice Liddell", "Liddell, Alice" if sep == ";" else "Alice Liddell")
        students = parse_roster(text)
        assert [s.id for s in students] == ["a1", "b2", "c3", "d4", "d5", "z9"]
    assert parse_roster(ROSTER.replace(",", ";").replace("Alice Liddell", "Liddell, Alice"))[0].name == "Liddell, Alice"
