namespace Chainwalk.Tests.Support;

/// <summary>Locates the repository root and the shared corpus (../shared beside the repository).</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The shared data: ../shared beside the repository, else the nearest ancestor's shared/ (git worktrees live deeper).</summary>
    public static string Shared { get; } = FindShared();

    public static string Corpus => Path.Combine(Shared, "corpus");

    public static string Golden => Path.Combine(RepoRoot, "tests", "Chainwalk.Tests", "golden");

    private static string FindShared()
    {
        string? dir = Path.GetDirectoryName(RepoRoot);
        while (dir is not null)
        {
            string candidate = Path.Combine(dir, "shared");
            if (Directory.Exists(Path.Combine(candidate, "corpus"))) return candidate;
            dir = Path.GetDirectoryName(dir);
        }
        return Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    }

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
