namespace Chainwalk.Tests.Support;

/// <summary>Locates the repository root and the shared corpus (../shared beside the repository).</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    public static string Shared => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string Corpus => Path.Combine(Shared, "corpus");

    public static string Golden => Path.Combine(RepoRoot, "tests", "Chainwalk.Tests", "golden");

    private static string FindRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir, "Chainwalk.slnx"))) return dir;
            dir = Path.GetDirectoryName(dir);
        }
        throw new DirectoryNotFoundException("repository root (Chainwalk.slnx) not found above " + AppContext.BaseDirectory);
    }
}
