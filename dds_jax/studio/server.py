"""Command line of the studio: config flags, the work directory, the local server."""
from dds_jax.cli import common
from dds_jax.studio import access



def define_flags():
    from absl import flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, common.config_help(
        "Experiment config file (configs/*.py); its models, parts and DDS settings are the studio's "
        "defaults"), lock_config=True)
    flags.DEFINE_integer("port", 8765, "Port on 127.0.0.1.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (keep it local: the secret in the URL "
                        "travels unencrypted over plain HTTP).")
    flags.DEFINE_string("token", None, "The secret in the printed URL (default: a new random one per "
                        f"start); at least {access.MIN_TOKEN_CHARS} characters.")
    flags.DEFINE_string("workdir", "runs/studio", "Samples, labels, the trained segmenter, masks and DDS runs.")
    flags.DEFINE_multi_string("browse", [], "More folders whose run directories and reports to list "
                              "(the parent of config.output_dir and WORKDIR/runs always are).")
    flags.mark_flags_as_required(["config"])


def main(argv):
    from absl import flags
    from dds_jax.studio.app import create_app
    from dds_jax.studio.engine import Studio
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        common.fail(f"unexpected arguments {argv[1:]}")
    try:
        import flask  # noqa: F401
    except ImportError:
        common.fail('the studio needs its extra: pip install -e ".[studio]"')
    token = access.new_token() if FLAGS.token is None else access.check_token_choice(FLAGS.token)
    studio = Studio(FLAGS.config, FLAGS.workdir, FLAGS.browse)
    app = create_app(studio, token, FLAGS.host, FLAGS.port)
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)     # not a line per progress poll
    print(f"DDS studio on {access.url(FLAGS.host, FLAGS.port, token)}  (open this URL: its token lets the "
          f"browser in; work directory {studio.workdir}; Ctrl-C stops)", flush=True)
    try:
        app.run(host=FLAGS.host, port=FLAGS.port, threaded=True, use_reloader=False, debug=False)
    except OSError as e:
        common.fail(f"cannot listen on {FLAGS.host}:{FLAGS.port} ({e.strerror or e}); pass another --port")


def run():
    common.run(main, define_flags, common.parse_config_flags)
