"""DDS studio: label a part, train the one-shot segmenter, run DDS and browse results in the browser.

  pip install -e ".[studio]"
  python -m dds_jax.studio --config=configs/demo.py --port=8765      # then open the URL it prints

A local web app (Flask + one static canvas page) on 127.0.0.1 for any experiment config: it samples
the source generator, lets you paint a label (one colour per part) or upload a mask PNG, trains the
segmenter (``dds_jax.cli.segment train``) and shows its masks on both domains, runs DDS
(``dds_jax.pipeline.run_dds``) with live progress, and browses run directories and their Table 1 /
benchmark reports. Long work runs in one background worker; files go to ``--workdir``.

Only its own page drives it (``access``): the printed URL holds a random secret (``--token`` to set
one) that the first visit turns into an HttpOnly, SameSite=Strict cookie; a request without it, with
a ``Host`` other than the listening address or a loopback name (DNS rebinding), or a change with
another site's ``Origin``, gets 403.
"""
