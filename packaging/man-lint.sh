#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# man-lint.sh MANDIR PAGE... - every page is built and lint-clean:
# `mandoc -T lint -W warning` says nothing, `man --warnings` (groff)
# prints no warning, and the rendered text shows no scdoc markup that
# scdoc left as it was (`_N_` or `*word*` where scdoc does not see a
# format: after a letter, digit or `+`, say).  Exit 77 (ctest: skipped)
# without mandoc.
set -u
dir=$1; shift
command -v mandoc >/dev/null || { echo "mandoc is not installed (scripts/setup installs it)"; exit 77; }
rc=0
for page in "$@"; do
	f=$dir/$page ok=1
	if [ ! -s "$f" ]; then echo "$page: not built"; rc=1; continue; fi
	out=$(mandoc -T lint -W warning "$f" 2>&1) || ok=0
	[ -z "$out" ] || { echo "$out"; ok=0; }
	# Rendered as plain text (overstrikes removed); a word wrapped in _
	# or * that is not part of a longer word is markup scdoc let through.
	# Globs such as run:qc.* stay legal: the marker must touch a letter or
	# digit on its inner side and no word character on its outer side.
	stray=$(mandoc -T ascii "$f" | sed 's/.\x08//g' | grep -nP \
		'(?<![\w*])([_*])(?=[A-Za-z0-9])[^_*\n]*?(?<=[A-Za-z0-9.])\1(?![\w*])')
	[ -z "$stray" ] || { echo "$page: scdoc markup left in the text:"; echo "$stray"; ok=0; }
	if command -v man >/dev/null; then
		warn=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
		[ -z "$warn" ] || { echo "$page: $warn"; ok=0; }
	fi
	if [ $ok -eq 1 ]; then echo "$page: ok"; else echo "$page: FAILED"; rc=1; fi
done
exit $rc
