# SPDX-License-Identifier: Apache-2.0
# worktree.sh - sourced by gen-pki and gen-keys (bash).  They write private
# keys (the CA's among them): inside a git work tree those are one
# `git add -A` away from a published repository, so a DIR there is refused
# unless the caller says it is meant (--in-tree; the demo does, into its
# ignored demo/ folder).

# work_tree_of DIR: print the top of the git work tree that DIR (made or
# not yet) would be in, and succeed; fail outside any.  Looks for a .git
# entry (folder, or file for worktrees and submodules) from DIR's nearest
# existing folder up to /, without git: no git installed, or a tree owned
# by another user (git's safe.directory), must not let a key in unasked.
work_tree_of() {
	local d=$1
	while [ ! -d "$d" ]; do d=$(dirname "$d"); done
	d=$(cd "$d" && pwd -P) || return 1
	while :; do
		if [ -e "$d/.git" ]; then
			printf '%s\n' "$d"
			return 0
		fi
		[ "$d" = / ] && return 1
		d=$(dirname "$d")
	done
}

# refuse_work_tree PROG DIR IN_TREE: exit 2 with the reason when DIR is in
# a work tree and IN_TREE is not 1.
refuse_work_tree() {
	local top
	[ "$3" = 1 ] && return 0
	top=$(work_tree_of "$2") || return 0
	echo "$1: $2 is inside the git work tree $top: the keys written there are one" \
		"\`git add\` away from being published.  Use a folder outside it" \
		"(e.g. ~/muster-pki), or pass --in-tree if it is meant." >&2
	exit 2
}
