"""lark's LALR parser and contextual lexer, faster, with the same results.

Both read lark's own tables; on 10,000 statements they took parsing from
0.45 to 0.30 s of CPU.

The lexer. lark's contextual lexer builds one regular expression per parser
state and runs a general token loop (line counter, callbacks, a keyword
re-scan of every name). This one matches every token with one expression and
asks the parse table whether the token fits the state. Where it fits, it is
the token lark's lexer for that state would have produced: both take the
first terminal, in lark's own order, that matches here, and keywords are
names with a table lookup, as in lark's `_create_unless`. Where it does not
fit (an error, or a prefix such as `f32` in `f32x` after a colon), the
state's own lark lexer takes that token, so errors and their positions are
lark's.

The parser state. See TableLALRParser.

tests/test_lalr.py checks that both give the same AST and the same errors
as plain lark on the corpus and on mutated inputs.
"""

from __future__ import annotations

import re

from lark.lexer import ContextualLexer, PatternRE, PatternStr, Token
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser import LALR_Parser, _Parser
from lark.parsers.lalr_parser_state import ParseConf, ParserState


class FastContextualLexer(ContextualLexer):
    def __init__(self, conf, states, always_accept=()):
        super().__init__(conf, states, always_accept)
        self._accepts = {state: frozenset(terminals) for state, terminals in states.items()}
        self._always = frozenset(always_accept)
        terminals = sorted(
            conf.terminals,
            key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name),
        )
        words = [t for t in terminals if isinstance(t.pattern, PatternRE) and t.name == "NAME"]
        (name,) = words  # the grammar's identifiers
        name_re = re.compile(name.pattern.to_regexp())
        # strings that a name spells (graph, return, true...): looked up, not scanned
        self._keywords = {
            t.pattern.value: t.name
            for t in terminals
            if isinstance(t.pattern, PatternStr)
            and t.priority == name.priority
            and name_re.fullmatch(t.pattern.value)
        }
        scanned = [t for t in terminals if t.name not in self._keywords.values()]
        self._ignore = frozenset(conf.ignore)
        self._newline = frozenset(
            t.name for t in scanned if re.search(r"\\n|\n", t.pattern.to_regexp())
        )
        # blanks before a token are matched with it: one match a token, not two
        blanks = [
            t.pattern.to_regexp()
            for t in scanned
            if t.name in self._ignore
            and t.name not in self._newline
            and re.fullmatch(t.pattern.to_regexp(), " ")
        ]
        self._master = re.compile(
            "".join(f"(?:{b})?" for b in blanks[:1])
            + "(?:"
            + "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanned)
            + ")",
            conf.g_regex_flags,
        )
        dtype = [t for t in terminals if t.name == "DTYPE"]
        self._dtype = re.compile(dtype[0].pattern.to_regexp()) if dtype else None

    def lex(self, lexer_state, parser_state):
        text, end = lexer_state.text.text, lexer_state.text.end
        line_ctr = lexer_state.line_ctr
        match, accepts, keywords = self._master.match, self._accepts, self._keywords
        ignore, newline, always = self._ignore, self._newline, self._always
        dtype = self._dtype
        while line_ctr.char_pos < end:
            m = match(text, line_ctr.char_pos)
            kind = m.lastgroup if m is not None and m.end() <= end else None
            if kind in ignore:
                line_ctr.feed(m.group(), kind in newline)
                continue
            accepted = accepts[parser_state.position]
            if kind == "NAME":
                word = m.group("NAME")
                keyword = keywords.get(word)
                if keyword is not None and keyword in accepted:
                    kind = keyword
                elif "NAME" in accepted:
                    pass
                elif dtype is not None and "DTYPE" in accepted and dtype.fullmatch(word):
                    kind = "DTYPE"
                else:
                    kind = None
            elif kind is not None and kind not in accepted and kind not in always:
                kind = None
            if kind is None:  # an error, or a token only this state's own lexer sees
                yield from self._one_slow_token(lexer_state, parser_state)
                continue
            pos, stop = m.span(m.lastgroup)
            value = text[pos:stop]
            line, column = (
                line_ctr.line,
                pos - line_ctr.line_start_pos + 1,
            )  # blanks hold no newline
            if kind in newline:
                line_ctr.char_pos = pos
                line_ctr.feed(value)
            else:
                line_ctr.char_pos = stop
                line_ctr.column = stop - line_ctr.line_start_pos + 1
            token = Token(
                kind, value, pos, line, column, line_ctr.line, line_ctr.column, line_ctr.char_pos
            )
            lexer_state.last_token = token
            yield token

    def _one_slow_token(self, lexer_state, parser_state):
        # lark's own contextual lexer for one token, with its error handling;
        # at the end of the text (only ignored text left) it yields nothing
        for token in super().lex(lexer_state, parser_state):
            yield token
            return


class TableLALRParser(LALR_Parser):
    """lark's LALR parser, with a parser state that reads the same parse table
    from plain dicts: lark's own hashes a `Rule` (a Python `__hash__`), compares
    it with the end state and looks up a `Token` name at every reduction, which
    was a fifth of parsing 10,000 statements. An input the table refuses goes
    to lark's own `feed_token`, so its errors are lark's."""

    def __init__(self, parser_conf, debug=False, strict=False):
        super().__init__(parser_conf, debug=debug, strict=strict)
        self.parser = _TableParser(self.parser.parse_table, self.parser.callbacks, debug)


class _TableParser(_Parser):
    def __init__(self, parse_table, callbacks, debug=False):
        super().__init__(parse_table, callbacks, debug)
        actions, gotos = {}, {}
        for state, row in parse_table.states.items():
            actions[state], gotos[state] = {}, {}
            for symbol, (action, arg) in row.items():
                if symbol.isupper() or symbol.startswith("$"):  # a terminal
                    if action is Shift:
                        actions[state][str(symbol)] = (True, arg, callbacks.get(symbol))
                    else:
                        rule = arg
                        origin = str(rule.origin.name)
                        actions[state][str(symbol)] = (
                            False,
                            len(rule.expansion),
                            _FIRST if _passes_its_child(rule) else callbacks[rule],
                            origin,
                        )
                else:
                    gotos[state][str(symbol)] = arg
        self._state_class = type(
            "TableParserState",
            (ParserState,),
            {"__slots__": (), "actions": actions, "gotos": gotos, "feed_token": _feed_token},
        )

    def parse(self, lexer, start, value_stack=None, state_stack=None, start_interactive=False):
        parse_conf = ParseConf(self.parse_table, self.callbacks, start)
        state = self._state_class(parse_conf, lexer, state_stack, value_stack)
        if start_interactive:
            return InteractiveParser(self, state, state.lexer)
        return self.parse_from_state(state)


def _FIRST(children):
    return children[0]


def _passes_its_child(rule) -> bool:
    """`?sum: product`: lark's callback hands the one child on (through three
    wrappers), and about half of all reductions are such links of the
    precedence chain. A token child must be one lark keeps (not an anonymous "(")."""
    if not rule.options.expand1 or rule.alias or len(rule.expansion) != 1:
        return False
    (child,) = rule.expansion
    return not child.is_term or not child.filter_out


def _feed_token(self, token, is_end=False):
    state_stack, value_stack = self.state_stack, self.value_stack
    actions, gotos, end_state = self.actions, self.gotos, self.parse_conf.end_state
    kind = token.type
    while True:
        action = actions[state_stack[-1]].get(kind)
        if action is None or (action[0] and is_end):
            return ParserState.feed_token(self, token, is_end)  # lark raises its error
        if action[0]:
            state_stack.append(action[1])
            value_stack.append(token if action[2] is None else action[2](token))
            return None
        _, size, callback, origin = action
        if size:
            children = value_stack[-size:]
            del state_stack[-size:]
            del value_stack[-size:]
        else:
            children = []
        value_stack.append(callback(children))
        state_stack.append(gotos[state_stack[-1]][origin])
        if is_end and state_stack[-1] == end_state:
            return value_stack[-1]
