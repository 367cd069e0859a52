namespace Chainwalk.Tests.Support;

/// <summary>The CLI built beside the tests, as a shell command (for tests that drive it or its shims through bash).</summary>
public static class CliCommand
{
    /// <summary>The apphost in the tests' output directory, else <c>dotnet Chainwalk.Cli.dll</c>; quoted for bash.</summary>
    public static string Shell
    {
        get
        {
            string apphost = Path.Combine(AppContext.BaseDirectory, "Chainwalk.Cli");
            if (File.Exists(apphost)) return Quote(apphost);
            string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } d ? d : "dotnet";
            return Quote(dotnet) + " " + Quote(Path.Combine(AppContext.BaseDirectory, "Chainwalk.Cli.dll"));
        }
    }

    /// <summary><paramref name="s"/> as one single-quoted bash word.</summary>
    public static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
