#!/usr/bin/env python3
"""Structural check of an SPDX 2.3 JSON document (Debian has no SPDX validator
package): the fields the spec requires of the document and of each package,
unique SPDXIDs of the allowed form, relationships and documentDescribes that
name elements of the document, purls where given. Exit 1 naming each problem."""
import json, re, sys

doc = json.load(open(sys.argv[1]))
problems = []
def need(obj, fields, where):
    for f in fields:
        if f not in obj or obj[f] in ("", None):
            problems.append(f"{where}: missing {f}")

need(doc, ["spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo"], "document")
if doc.get("spdxVersion") != "SPDX-2.3": problems.append("spdxVersion is not SPDX-2.3")
if doc.get("dataLicense") != "CC0-1.0": problems.append("dataLicense is not CC0-1.0")
if doc.get("SPDXID") != "SPDXRef-DOCUMENT": problems.append("document SPDXID")
if not re.match(r"^[a-z][a-z0-9+.-]*://[^#\s]+$", doc.get("documentNamespace", "")): problems.append("documentNamespace is not a URI without '#'")
ci = doc.get("creationInfo", {})
need(ci, ["created", "creators"], "creationInfo")
if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ci.get("created", "")): problems.append("created is not YYYY-MM-DDThh:mm:ssZ")
if not all(re.match(r"^(Tool|Organization|Person): .+", c) for c in ci.get("creators", [])): problems.append("creators")

ids = {"SPDXRef-DOCUMENT"}
for i, p in enumerate(doc.get("packages", [])):
    where = f"packages[{i}] {p.get('name')}"
    need(p, ["SPDXID", "name", "downloadLocation"], where)
    for f in ["licenseConcluded", "licenseDeclared", "copyrightText", "supplier"]:
        if f in p and not p[f]: problems.append(f"{where}: empty {f}")
    sid = p.get("SPDXID", "")
    if not re.match(r"^SPDXRef-[A-Za-z0-9.-]+$", sid): problems.append(f"{where}: SPDXID {sid!r}")
    if sid in ids: problems.append(f"{where}: SPDXID {sid} not unique")
    ids.add(sid)
    if p.get("filesAnalyzed", True): problems.append(f"{where}: filesAnalyzed true without files")
    if "supplier" in p and p["supplier"] != "NOASSERTION" and not re.match(r"^(Person|Organization): ", p["supplier"]):
        problems.append(f"{where}: supplier form")
    for r in p.get("externalRefs", []):
        need(r, ["referenceCategory", "referenceType", "referenceLocator"], where + " externalRef")
        if r.get("referenceType") == "purl" and not re.match(r"^pkg:[a-z]+/[^@\s]+(@[^?#\s]+)?(\?[^#\s]*)?$", r["referenceLocator"]):
            problems.append(f"{where}: purl {r['referenceLocator']!r}")
kinds = {"DESCRIBES", "CONTAINS", "DEPENDS_ON", "GENERATED_FROM"}
for i, r in enumerate(doc.get("relationships", [])):
    need(r, ["spdxElementId", "relationshipType", "relatedSpdxElement"], f"relationships[{i}]")
    for f in ("spdxElementId", "relatedSpdxElement"):
        if r.get(f) not in ids: problems.append(f"relationships[{i}]: {f} {r.get(f)!r} names no element")
    if r.get("relationshipType") not in kinds: problems.append(f"relationships[{i}]: type {r.get('relationshipType')}")
for d in doc.get("documentDescribes", []):
    if d not in ids: problems.append(f"documentDescribes {d!r} names no element")
described = [r for r in doc.get("relationships", []) if r.get("relationshipType") == "DESCRIBES"]
if not described: problems.append("the document DESCRIBES nothing")
contained = {r["relatedSpdxElement"] for r in doc.get("relationships", []) if r.get("relationshipType") == "CONTAINS"}
orphans = ids - contained - {"SPDXRef-DOCUMENT"} - {r["relatedSpdxElement"] for r in described}
if orphans: problems.append(f"packages neither described nor contained: {sorted(orphans)[:5]}")
for p in problems: print("check_spdx:", p)
print(f"check_spdx: {len(ids) - 1} packages, {len(doc.get('relationships', []))} relationships, {len(problems)} problems")
sys.exit(1 if problems else 0)
