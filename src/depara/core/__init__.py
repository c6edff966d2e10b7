"""The method in numpy (no torch): the attribution graph, its edges and their ranks, the label graph, and the
comparisons of graphs (node term V, edge term E, S = V + λE, similarity matrices, blocked for large zoos).

Modules: :mod:`~depara.core.graph` (the :class:`~depara.core.graph.Graph` and its files),
:mod:`~depara.core.edges` (features → edges → standardised ranks), :mod:`~depara.core.labels` (the label graph),
:mod:`~depara.core.similarity` (V, E, S, rankings and matrices), :mod:`~depara.core.similarity_edges` (the edge term
and its local variants), :mod:`~depara.core.similarity_blocked` and :mod:`~depara.core.graph_rows` (matrices of more
graphs than fit in RAM), :mod:`~depara.core.ids` (probe ids), :mod:`~depara.core.tree` (the task tree).
"""
