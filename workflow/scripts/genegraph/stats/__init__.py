"""Statistics with no package equivalent: CS-CORE, SPARK-X, Davies' method, SCTransform-v2."""
