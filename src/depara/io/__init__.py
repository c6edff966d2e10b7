"""Files in and out: the validated readers of users' files (:mod:`~depara.io.readers`) and the atomic writers,
output-path checks and seeding (:mod:`~depara.io.files`)."""
