from .retrieval_loop import RetrievalTestLoop, RetrievalValLoop

__all__ = ['RetrievalValLoop', 'RetrievalTestLoop']
