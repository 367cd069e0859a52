namespace Chainwalk.Compat;

/// <summary>
/// Whether this process was started with its standard input closed (<c>tool &lt;&amp;-</c>). The .NET runtime opens
/// files and a pipe of its own before Main runs, and the first of them takes the lowest free descriptor: with fd 0
/// closed at exec, fd 0 is then the read end of the runtime's internal pipe, and reading "standard input" would wait
/// for ever. Such a pipe is recognised by its write end, which this same process holds (no parent hands a reader the
/// write end of its own input). A closed standard input reads as empty, as iptables-legacy-restore reads it (read(2)
/// fails with EBADF and fgets ends). iptables-nft-restore 1.8.9 instead hangs: its netlink socket takes fd 0 and it
/// reads its own socket (tests/conformance/known-differences.md).
/// </summary>
public static class StandardInput
{
    private static int _closed = -1;

    /// <summary>True when fd 0 was closed at exec (now absent, or the runtime's own pipe). Looked up once, when first asked.</summary>
    public static bool WasClosed
    {
        get
        {
            if (_closed < 0) _closed = Detect("/proc/self/fd") ? 1 : 0;
            return _closed == 1;
        }
    }

    /// <summary>
    /// The check on a /proc/PID/fd directory: fd 0 missing, or a pipe whose write end is open at another descriptor of
    /// the same process. Without /proc (not Linux) nothing can be told: not closed.
    /// </summary>
    internal static bool Detect(string fdDir)
    {
        if (!Directory.Exists(fdDir)) return false;
        string? stdin = LinkOf(Path.Combine(fdDir, "0"), out bool exists);
        if (!exists) return true;
        if (stdin is null || !stdin.StartsWith("pipe:", StringComparison.Ordinal)) return false;
        string fdinfo = Path.Combine(Path.GetDirectoryName(fdDir) ?? "/proc/self", "fdinfo");
        try
        {
            foreach (string fd in Directory.EnumerateFileSystemEntries(fdDir))
            {
                string name = Path.GetFileName(fd);
                if (name == "0" || LinkOf(fd, out _) != stdin) continue;
                if (IsWriteOnly(Path.Combine(fdinfo, name))) return true;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return false;
    }

    private static string? LinkOf(string path, out bool exists)
    {
        try
        {
            var info = new FileInfo(path);
            exists = info.Exists || info.LinkTarget is not null;
            return info.LinkTarget;
        }
        catch (IOException)
        {
            exists = false;
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            exists = true;
            return null;
        }
    }

    /// <summary>/proc/PID/fdinfo/N's "flags:" (octal open flags): O_ACCMODE is O_WRONLY.</summary>
    private static bool IsWriteOnly(string fdinfoPath)
    {
        try
        {
            foreach (string line in File.ReadLines(fdinfoPath))
            {
                if (!line.StartsWith("flags:", StringComparison.Ordinal)) continue;
                long flags = Convert.ToInt64(line["flags:".Length..].Trim(), 8);
                return (flags & 3) == 1;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        catch (FormatException)
        {
        }
        return false;
    }
}
