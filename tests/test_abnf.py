"""The token characters are written once (abnf.TCHARS) and must agree with the TOKEN pattern
the parser's regular expressions use."""

import re

from prefork.http import abnf


def test_tchars_and_the_token_pattern_agree_on_every_byte():
    matched = {byte for byte in range(256) if re.fullmatch(abnf.TOKEN, bytes([byte]))}
    assert matched == set(abnf.TCHARS)
