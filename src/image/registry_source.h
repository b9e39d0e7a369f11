// An image read straight from an OCI registry (`kiln audit docker://...`):
// a BlobSource over the distribution API, layers streamed, never stored.
#pragma once

#include <memory>

#include "image/image.h"
#include "registry/registry.h"

namespace kiln::image {

// The image `ref` names, from the registry at ref.host (opts.host is set to
// it; opts.insecure, credentials and timeouts are the caller's). It looks
// like an OCI layout to read_image:
// - "index.json": made up, one descriptor for the reference's manifest
//   (media type, digest, size as served; ref.name annotation = the tag);
// - "blobs/sha256/<hex>": a manifest's exact bytes when that digest is the
//   reference's manifest or is listed by an index served before; otherwise
//   the blob, streamed from the registry by a producer thread through a
//   bounded queue (a few MiB), so a layer is never held whole.
// One stream at a time: open() stops a stream still open before it (the
// registry client is not thread-safe). Registry failures become ImageError
// naming "docker://HOST/REPO..." and the blob.
std::shared_ptr<BlobSource> registry_source(const registry::Reference& ref, registry::Options opts);

}  // namespace kiln::image
