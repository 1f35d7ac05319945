"""An adapter class's tools are described once per class (a zygote does it before it forks),
and each instance gets them bound to itself, described as before: no ``self``, the context
parameter apart, staticmethods and overrides as the instance sees them."""

from snakepit_bridge import BaseAdapter, SessionContext, tool


class Base(BaseAdapter):
    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    @tool
    def add(self, a: int, b: int = 2) -> int:
        """Add two numbers.

        More text that is not the description."""
        return a + b + self.offset

    @tool(name="scaled", description="b times a")
    def scale(self, a: float, ctx: SessionContext, b: float = 1.0) -> float:
        return a * b

    @tool
    @staticmethod
    def shout(text: str) -> str:
        return text.upper()

    @tool
    def replaced(self) -> str:
        return "base"


class Derived(Base):
    @tool
    def more(self, items: list) -> int:
        return len(items)

    def replaced(self) -> str:   # no longer a tool's code: the instance calls this one
        return "derived"


def test_each_instance_calls_its_own_bound_tools():
    one, two = Base(offset=10), Base(offset=20)
    assert one.tools()["add"].fn(1) == 13
    assert two.tools()["add"].fn(1) == 23
    assert one.tools()["shout"].fn("hi") == "HI"
    assert Derived().tools()["replaced"].fn() == "derived"


def test_descriptions_leave_out_self_and_the_context():
    tools = Base().tools()
    add = tools["add"]
    assert [(p.name, p.type_name, p.required) for p in add.params] == [
        ("a", "int", True), ("b", "int", False)]
    assert add.description == "Add two numbers."
    scaled = tools["scaled"]
    assert [p.name for p in scaled.params] == ["a", "b"]
    assert (scaled.ctx_param, scaled.description) == ("ctx", "b times a")
    assert [p.name for p in tools["shout"].params] == ["text"]
    assert add.bind({"a": 1}) == {"a": 1}


def test_a_class_is_described_once_and_a_subclass_on_its_own():
    assert Base.describe_tools() is Base.describe_tools()
    assert sorted(Base.describe_tools()) == ["add", "replaced", "scaled", "shout"]
    assert sorted(Derived.describe_tools()) == ["add", "more", "replaced", "scaled", "shout"]
    assert sorted(Base().tools()) == ["add", "replaced", "scaled", "shout"]
