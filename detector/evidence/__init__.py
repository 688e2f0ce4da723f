"""Evidence beside the score: what an image file says about itself, and how far to trust a score.

It owns provenance (`metadata` reads a file into an `report.EvidenceReport`: Content Credentials
through `c2pa_reader`, text and XMP through `embedded`, generator settings through `generation`,
invisible watermarks through `watermark` and `evidence_watermark`), the forensic views
(`forensics`), the stress test and stability check, the headline (`verdict`) and the assessment
that bundles them. It may import `detector.core`, never the UI, serving, scale or hub layers.
"""
