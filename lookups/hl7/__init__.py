"""HL7 v2 ORU^R01 over MLLP: a second door to the FHIR delivery service (lookups.fhir.services)."""
