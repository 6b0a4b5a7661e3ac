"""``--mesh``/``--rules`` (``flagcheck.mesh_flags``) for the recipes on the generic train step: one call from the
flags to a placed state, the train step's shardings and the batch placement (deepcore.train.sharding)."""
import common


def mesh_plan(args, devices, model, spec, tx):
    """``--mesh``/``--rules`` (``flagcheck.mesh_flags``) of a script on the generic train step: ``(state placed,
    mesh, train_step shardings, wrap_loss, put_batch)`` by ``deepcore.train.sharding.plan`` (without ``--mesh``:
    data-parallel over ``devices``, parameters replicated); ``put_batch(None)`` is None. The plan is made on the
    state's shapes first (``jax.eval_shape``), so a rule set that does not fit the model or the mesh is one line
    (UsageError) naming the parameter path before anything is initialised or compiled; then the state
    (``init_state`` with ``args.seed``) is built and placed."""
    from deepcore.train import init_state, parallel, sharding
    from deepcore.train.fit_report import abstract_state

    try:
        mesh, kw, wrap_loss, put = sharding.plan(args.mesh, args.rules, devices, model, spec, tx,
                                                 abstract_state(model, spec, tx, args.seed))
    except ValueError as e:
        raise common.UsageError(f"--rules {args.rules} on --mesh {args.mesh}: {e}") from None
    state = parallel.place_state(init_state(model, spec, tx, args.seed), kw["state_sharding"])
    return state, mesh, kw, wrap_loss, lambda b: b if b is None else put(b)
