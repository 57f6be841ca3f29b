// MeshCore
