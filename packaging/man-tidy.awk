# SPDX-License-Identifier: Apache-2.0
# man-tidy.awk - drop the redundant paragraph macros scdoc writes (after a
# heading, before a heading, twice in a row) and move one that precedes .RE
# after it, so that `mandoc -T lint` has nothing to say.  Text is untouched.
function is_block(l) { return l ~ /^\.(SH|SS|P|TH)( |$)/ }
{
	if ($0 == ".P") {
		if (prev ~ /^\.(TH|SH|SS)( |$)/ || pending)
			next
		pending = 1
		next
	}
	if (pending && $0 ~ /^\.RE/) {
		print; prev = $0
		next
	}
	if (pending && !is_block($0))
		print ".P"
	pending = 0
	print; prev = $0
}
