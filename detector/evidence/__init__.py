"""Evidence beside the score: what an image file says about itself, and how far to trust a score.

It owns provenance (metadata and Content Credentials in `metadata`, `c2pa_reader`, invisible
watermarks in `watermark` and `evidence_watermark`), the forensic views (`forensics`), the stress
test and stability check, the domain warnings, the headline (`verdict`) and the assessment that
bundles them. It may import `detector.core`, never the UI, serving, scale or hub layers.
"""
