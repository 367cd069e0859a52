using Chainwalk.Host;

namespace Chainwalk.Compat;

/// <summary>
/// <c>sysctl [-w] [-n] [-q] [-a] KEY[=VALUE] …</c> for the net.* keys Chainwalk models (procps' sysctl
/// output: "key = value", -n values only; unknown keys: "sysctl: cannot stat /proc/sys/…: No such file or directory").
/// </summary>
public static class SysctlCompat
{
    public static int Run(string[] argv, HostStore store, ToolIo io)
    {
        bool write = false, valuesOnly = false, quiet = false, all = false, ignore = false;
        var items = new List<string>();
        for (int i = 1; i < argv.Length; i++)
        {
            string a = argv[i];
            if (a.Length > 1 && a[0] == '-' && !a.StartsWith("--", StringComparison.Ordinal))
            {
                foreach (char c in a[1..])
                {
                    switch (c)
                    {
                        case 'w': write = true; break;
                        case 'n': valuesOnly = true; break;
                        case 'q': quiet = true; break;
                        case 'a': case 'A': case 'X': all = true; break;
                        case 'e': ignore = true; break;
                        default:
                            io.Err.WriteLine($"sysctl: invalid option -- '{c}'");
                            return 1;
                    }
                }
                continue;
            }
            switch (a)
            {
                case "--write": write = true; continue;
                case "--values": valuesOnly = true; continue;
                case "--quiet": quiet = true; continue;
                case "--all": all = true; continue;
                case "--ignore": ignore = true; continue;
            }
            items.Add(a);
        }

        using HostLock hostLock = store.Lock(waitSeconds: null);
        VirtualHost host = store.Load();
        int rc = 0;
        bool changed = false;
        if (all)
        {
            foreach (var kv in host.Sysctls) Print(io, kv.Key, kv.Value, valuesOnly);
            return 0;
        }
        foreach (string item in items)
        {
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0 && write)
            {
                io.Err.WriteLine($"sysctl: \"{item}\" must be of the form name=value");
                rc = 1;
                continue;
            }
            string key = Normalize(eq < 0 ? item : item[..eq]);
            if (!host.Sysctls.TryGetValue(key, out string? current))
            {
                if (!ignore) io.Err.WriteLine($"sysctl: cannot stat /proc/sys/{key.Replace('.', '/')}: No such file or directory");
                rc = ignore ? rc : 255;
                continue;
            }
            if (eq < 0)
            {
                Print(io, key, current, valuesOnly);
                continue;
            }
            string value = item[(eq + 1)..].Trim();
            if (!Valid(key, value))
            {
                io.Err.WriteLine($"sysctl: setting key \"{key}\": Invalid argument");
                rc = 255;
                continue;
            }
            host.Sysctls[key] = value.Replace(' ', '\t');
            Mirror(host, key, value);
            changed = true;
            if (!quiet) Print(io, key, host.Sysctls[key], valuesOnly);
        }
        if (changed) store.SaveNetwork(host);
        return rc;
    }

    private static string Normalize(string key) => key.Trim().Replace('/', '.');

    private static void Print(ToolIo io, string key, string value, bool valuesOnly)
    {
        io.Out.WriteLine(valuesOnly ? value : $"{key} = {value}");
    }

    private static bool Valid(string key, string value)
    {
        if (key == "net.ipv4.ip_local_port_range")
        {
            string[] p = value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            return p.Length == 2 && p.All(x => int.TryParse(x, out int v) && v is > 0 and < 65536);
        }
        return long.TryParse(value, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long n) && n >= 0;
    }

    /// <summary>net.ipv4.ip_forward and conf.all.forwarding mirror each other, as in the kernel (devinet.c).</summary>
    private static void Mirror(VirtualHost host, string key, string value)
    {
        if (key == "net.ipv4.ip_forward" || key == "net.ipv4.conf.all.forwarding")
        {
            host.Sysctls["net.ipv4.ip_forward"] = value;
            foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith("net.ipv4.conf.", StringComparison.Ordinal) && k.EndsWith(".forwarding", StringComparison.Ordinal)).ToList())
            {
                host.Sysctls[k] = value;
            }
        }
        if (key == "net.ipv6.conf.all.forwarding")
        {
            foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith("net.ipv6.conf.", StringComparison.Ordinal) && k.EndsWith(".forwarding", StringComparison.Ordinal)).ToList())
            {
                host.Sysctls[k] = value;
            }
        }
    }
}
