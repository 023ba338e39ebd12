"""The capture-set layer on its own (no I/O): which files continue each other, in what order,
and where bytes are missing between them. Files are described as the quick look would."""

from __future__ import annotations

from trace_analyzer.capture_sets import FileFacts, FlowFacts, group, note_segment

C, S = "10.0.0.1:40000", "10.0.0.2:104"
SYN, ACK, PSH = 0x02, 0x10, 0x08


def facts(path, first, last, head=(), tail=(), linktype=1, snaplen=65535) -> FileFacts:
    """``head`` and ``tail``: (src, dst, seq, length, flags) segments at each end of the file."""
    found = FileFacts(path, size=1000, linktype=linktype, snaplen=snaplen, frames=10, first_time=first,
                      last_time=last)
    for segments, flows in ((head, found.head), (tail, found.tail)):
        for src, dst, seq, length, flags in segments:
            note_segment(flows, src, dst, seq, length, flags)
    return found


def names(sets):
    return [s.files for s in sets]


def test_a_file_taking_up_the_connection_continues_the_one_before_in_time_order():
    a = facts("z_first", 10, 20, head=[(C, S, 100, 0, SYN)], tail=[(C, S, 500, 100, ACK | PSH)])
    b = facts("a_second", 20, 30, head=[(C, S, 600, 100, ACK | PSH), (S, C, 9000, 0, ACK)])
    assert names(group([b, a])) == [["z_first", "a_second"]]
    [only] = group([a, b])
    assert only.gaps == [] and only.first_time == 10 and only.size == 2000


def test_the_set_is_named_by_the_common_prefix():
    a = facts("week/pacs.pcap0", 10, 20, tail=[(C, S, 500, 100, ACK)])
    b = facts("week/pacs.pcap1", 21, 30, head=[(C, S, 600, 100, ACK)])
    [only] = group([a, b])
    assert only.name == "week/pacs.pcap*"


def test_bytes_missing_between_two_files_are_a_gap_not_a_split():
    a = facts("a", 10, 20, tail=[(C, S, 500, 100, ACK)])
    b = facts("b", 25, 30, head=[(C, S, 2600, 100, ACK)])
    [only] = group([a, b])
    assert only.files == ["a", "b"]
    [gap] = only.gaps
    assert (gap.before, gap.after, gap.src, gap.dst, gap.missing) == ("a", "b", C, S, 2000)
    assert "missing" in gap.text()


def test_sequence_numbers_wrap_around():
    a = facts("a", 10, 20, tail=[(C, S, 0xFFFFFFF0, 0x20, ACK)])
    b = facts("b", 21, 30, head=[(C, S, 0x10, 5, ACK)])
    [only] = group([a, b])
    assert only.files == ["a", "b"] and only.gaps == []


def test_a_connection_silent_at_the_end_of_the_file_still_links_it():
    control = [(C, S, 100, 50, ACK)]
    bulk = [("10.0.0.3:5000", "10.0.0.4:104", 7000, 1400, ACK)]
    a = facts("a", 10, 20, head=control + bulk, tail=bulk)
    b = facts("b", 21, 30, head=[(C, S, 150, 50, ACK)])
    assert names(group([a, b])) == [["a", "b"]]


def test_what_does_not_continue_stays_separate():
    a = facts("a", 10, 20, tail=[(C, S, 500, 100, ACK)])
    reopened = facts("reopened", 21, 30, head=[(C, S, 77, 0, SYN), (S, C, 5, 0, SYN | ACK)])
    overlapping = facts("overlap", 15, 25, head=[(C, S, 600, 100, ACK)])
    other_link = facts("sll", 21, 30, head=[(C, S, 600, 100, ACK)], linktype=113)
    other_snap = facts("snap", 21, 30, head=[(C, S, 600, 100, ACK)], snaplen=96)
    strangers = facts("strangers", 21, 30, head=[("10.9.9.9:1", "10.9.9.8:2", 1, 10, ACK)])
    sets = group([a, reopened, overlapping, other_link, other_snap, strangers])
    assert sorted(map(len, (s.files for s in sets))) == [1] * 6


def test_a_syn_ack_first_continues_the_syn_before_it():
    a = facts("a", 10, 11, head=[(C, S, 100, 0, SYN)], tail=[(C, S, 100, 0, SYN)])
    b = facts("b", 11, 12, head=[(S, C, 900, 0, SYN | ACK)])
    assert names(group([a, b])) == [["a", "b"]]


def test_the_better_linked_chain_wins_and_empty_files_stand_alone():
    other = ("10.0.0.5:6000", "10.0.0.2:104")
    one = facts("one", 10, 20, tail=[(C, S, 500, 100, ACK)])  # overlaps two: not one capture
    two = facts("two", 11, 19, tail=[(C, S, 500, 100, ACK), (*other, 70, 10, ACK)])
    later = facts("later", 21, 30, head=[(C, S, 600, 100, ACK), (*other, 80, 10, ACK)])
    empty = FileFacts("empty")
    sets = group([one, two, later, empty])
    assert ["two", "later"] in names(sets) and ["one"] in names(sets) and ["empty"] in names(sets)


def test_flow_facts_keep_the_lowest_start_and_the_highest_end():
    flows: dict = {}
    note_segment(flows, C, S, 1000, 100, ACK)
    note_segment(flows, C, S, 900, 100, ACK)  # reordered: an earlier segment later
    note_segment(flows, C, S, 1100, 50, ACK | 0x01)  # FIN counts one
    assert flows[(C, S)] == FlowFacts(900, False, 1151)
