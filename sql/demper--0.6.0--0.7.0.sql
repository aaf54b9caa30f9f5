-- demper 0.7.0: security hardening, the seller's cabinet both ways, reliability, adaptive checks
-- and operators' tooling. Each section below says what it changes and why; the same objects are
-- defined in demper--0.7.0.sql for fresh installs (test/t/016_schema_equivalence.pl compares them).
\echo Use "ALTER EXTENSION demper UPDATE TO '0.7.0'" to load this file. \quit
