/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mpjson.h - msgpack <-> JSON (jansson) for args, data and CLI output.
 *
 * mpjson_from_msgpack() returns a new reference the caller json_decref()s,
 * or NULL when JSON cannot show the value faithfully (ext types, integers
 * above INT64_MAX, non-UTF-8 strings, non-string or duplicate map keys).
 * bin values become lowercase hex strings.  mpjson_pack() writes a JSON
 * value with the caller's packer; integers stay integers, reals stay reals.
 * mpjson_depth() says how deep a JSON value nests (0 for a scalar, 1 for
 * an array or object of scalars), for callers that must bound it before
 * packing: msgpack's unpacker and wire_check_map() both have a limit.
 */
#ifndef MUSTER_MPJSON_H
#define MUSTER_MPJSON_H

#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

#include "err.h"

json_t *mpjson_from_msgpack(const msgpack_object *o);
json_t *mpjson_hex(const void *p, size_t n);
int mpjson_pack(msgpack_packer *pk, json_t *j);

/*
 * One command-line argument into the args object, typed the same way by
 * the CLI and by `muster-runner --run`, so a module sees in the edit-run
 * loop what it will see in a real job:
 *	key=true, key=false	a boolean
 *	key=42, key=-7		an integer, but only as JSON writes one: no '+',
 *				no leading zeros ("0644" and "007" stay strings)
 *	key=anything else	a string
 *	key:=JSON		any JSON value
 *	key:=@FILE		the JSON in FILE (a QC profile, say)
 * The last of repeated keys wins.  MU_EINVAL with a reason otherwise
 * (no '=', no key, bad JSON, not UTF-8, nested deeper than args may be).
 */
int mpjson_arg(json_t *args, const char *spec, struct mu_err *err);
int mpjson_depth(json_t *j);

#endif
