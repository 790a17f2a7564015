"""A warm container's memory of what it read: bounded, and forgettable one key at a time."""

from bloxserver.memory import ContainerMemory


def test_given_a_remembered_value_then_it_is_returned_until_forgotten():
    memory: ContainerMemory[int] = ContainerMemory(capacity=3)
    assert memory.remember("a", 1) == 1
    assert memory.get("a") == 1 and memory.get("b") is None
    memory.forget("a")
    memory.forget("never-remembered")
    assert memory.get("a") is None


def test_given_a_full_memory_when_remembering_more_then_it_starts_over_with_the_new_entry():
    memory: ContainerMemory[int] = ContainerMemory(capacity=2)
    memory.remember("a", 1)
    memory.remember("b", 2)
    memory.remember("c", 3)
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == (None, None, 3)
