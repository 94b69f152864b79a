"""The grammar of RFC 9110 / RFC 9112 as compiled patterns, named after the RFC's productions.

The parser finds the end of a request head once and then checks the whole head with these
patterns, so validation runs in C rather than a Python loop over bytes.
"""

import re

# RFC 9110 5.6.2: token = 1*tchar
# tchar (RFC 9110 5.6.2): the bytes of a token -- a method, a field name.
TCHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
TOKEN_RE = re.compile(TOKEN)

# RFC 9112 3.2: origin-form, absolute-form, authority-form, asterisk-form. We accept any run of
# visible ASCII (a stricter check of each form is the application's business); no spaces, no
# control characters, no bytes >= 0x80 (RFC 3986 wants them percent-encoded).
REQUEST_TARGET = rb"[\x21-\x7e]+"

# RFC 9112 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT
HTTP_VERSION = rb"HTTP/([0-9])\.([0-9])"

# RFC 9112 3: request-line = method SP request-target SP HTTP-version
REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") (" + REQUEST_TARGET + rb") " + HTTP_VERSION)

# RFC 9110 5.5: field-value = *field-content, field-vchar = VCHAR / obs-text; surrounding OWS is
# not part of the value. Words of field-vchar separated by SP/HTAB, so there is no backtracking.
FIELD_VCHARS = rb"[^\x00-\x20\x7f]+"
FIELD_VALUE = rb"(?:" + FIELD_VCHARS + rb"(?:[ \t]+" + FIELD_VCHARS + rb")*)?"

# RFC 9112 5: field-line = field-name ":" OWS field-value OWS; no whitespace before the colon,
# no obs-fold (a line that starts with whitespace fails the field-name).
# FIELD_LINES checks a whole block of field lines; FIELD_LINE_AT_LINE_START then extracts the
# (name, value) pairs: with the head's bytes already checked (no controls but HTAB, CR and LF
# only as CRLF), a match is exactly one whole valid field line.
FIELD_LINE_AT_LINE_START = re.compile(
    rb"^(" + TOKEN + rb"):[ \t]*(" + FIELD_VALUE + rb")[ \t]*\r\n", re.MULTILINE)
FIELD_LINES = re.compile(rb"(?:" + TOKEN + rb":[ \t]*" + FIELD_VALUE + rb"[ \t]*\r\n)*")

# RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_EXT = rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + QUOTED_STRING + rb"))?)*"
# 16 significant hex digits fill 64 bits; more is an overflow, not a number we will ever read.
# Leading zeros are still 1*HEXDIG (llhttp accepts them too).
CHUNK_SIZE_LINE = re.compile(rb"(0*[0-9A-Fa-f]{1,16})" + CHUNK_EXT)

# The same, anchored where a chunk begins and ending at its CRLF (the grammar has no CR or LF, so
# a match ends at the first CRLF): the chunked reader's loop over whole chunks.
CHUNK_LINE = re.compile(rb"(0*[0-9A-Fa-f]{1,16})" + CHUNK_EXT + rb"\r\n")

# RFC 9112 6.3: Content-Length = 1*DIGIT (no sign, no spaces, no list); at most 18 significant
# digits, so an overflowing value is refused rather than read.
CONTENT_LENGTH = re.compile(rb"0*[0-9]{1,18}")

# In a head that has not ended yet: a bare CR, a bare LF (one at the very start is checked
# apart), or a line that starts with whitespace (obs-fold). None can begin a valid head.
HEAD_LINE_ERROR = re.compile(rb"\r[^\n]|[^\r]\n|\r\n[ \t]")

# Empty lines (RFC 9112 2.2): matched from where a head may begin, all of them in one call.
EMPTY_LINES = re.compile(rb"(?:\r\n)*")

# The tchars that begin a request-line, up to the first byte that is not one (it must be the SP
# after the method).
TCHARS_RUN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]*")

# RFC 9112 3.2: Host = uri-host [ ":" port ], and RFC 3986 3.2.2: uri-host = IP-literal /
# IPv4address / reg-name. A reg-name (which covers IPv4address) is read as dot-separated labels,
# none empty but for a final dot ("example.com."): RFC 3986 allows "a..b" or ".", nginx refuses
# them, and so do we. IPv6 addresses are checked loosely: hex digits, colons and dots in brackets.
_REG_NAME_LABEL = rb"(?:[-A-Za-z0-9_~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"
_REG_NAME = _REG_NAME_LABEL + rb"(?:\." + _REG_NAME_LABEL + rb")*\.?"
_IP_LITERAL = rb"\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+)\]"
HOST = re.compile(rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb")(?::[0-9]*)?")

# RFC 9112 3.2.2: absolute-form = absolute-URI; the scheme, the authority (up to the path, the
# query or a fragment), the rest.
ABSOLUTE_FORM = re.compile(rb"([A-Za-z][-A-Za-z0-9+.]*)://([^/?#]*)(.*)", re.DOTALL)

# RFC 9110 7.6.1: Connection = #connection-option
LIST_SEPARATOR = re.compile(rb"[ \t]*,[ \t]*")
