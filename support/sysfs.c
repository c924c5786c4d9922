// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of support::sysfs: a kobject with a group of attributes whose show and
 * store go to Rust, a class with its "ctl" device, plain directories and
 * links.  It exists because kobject attributes are C callbacks found by
 * container_of(); the policy (what to show, what a store does) is Rust's.
 */
#include <linux/device.h>
#include <linux/err.h>
#include <linux/export.h>
#include <linux/kobject.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include "helpers.h"

struct rrs_kobj {
	struct kobject kobj;
	void *ctx;
	const struct rrs_kobj_vt *vt;
	/* The release gives ctx back to Rust only once creation succeeded. */
	bool owns_ctx;
	unsigned int n;
	struct attribute_group grp;
	struct attribute **attrs;
	struct kobj_attribute *kattrs;
};

static struct rrs_kobj *to_rrs(struct kobject *kobj)
{
	return container_of(kobj, struct rrs_kobj, kobj);
}

static ssize_t rrs_show(struct kobject *kobj, struct kobj_attribute *a,
			char *buf)
{
	struct rrs_kobj *k = to_rrs(kobj);

	return k->vt->show(k->ctx, a - k->kattrs, buf);
}

static ssize_t rrs_store(struct kobject *kobj, struct kobj_attribute *a,
			 const char *buf, size_t n)
{
	struct rrs_kobj *k = to_rrs(kobj);
	ssize_t ret;

	/*
	 * A store may remove its own file (rrs_kobj_remove_self) and then the
	 * directory: the reference keeps the handler alive until it returns.
	 */
	kobject_get(kobj);
	ret = k->vt->store(k->ctx, a - k->kattrs, buf, n);
	kobject_put(kobj);
	return ret;
}

bool rrs_kobj_remove_self(struct rrs_kobj *k, unsigned int idx)
{
	if (idx >= k->n)
		return false;
	return sysfs_remove_file_self(&k->kobj, &k->kattrs[idx].attr);
}
EXPORT_SYMBOL_GPL(rrs_kobj_remove_self);

static void rrs_release(struct kobject *kobj)
{
	struct rrs_kobj *k = to_rrs(kobj);

	if (k->owns_ctx)
		k->vt->release(k->ctx);
	kfree(k->attrs);
	kfree(k->kattrs);
	kfree(k);
}

static const struct kobj_type rrs_ktype = {
	.sysfs_ops = &kobj_sysfs_ops,
	.release = rrs_release,
};

/*
 * Lock classes of the attributes' active references, chosen by the caller:
 * sysfs_attr_init() would give every attribute made here one class, so
 * lockdep would tie a directory removed in one module's work item to a
 * store of another module that waits for that work.  Static, as lockdep
 * wants its keys.
 */
#ifdef CONFIG_DEBUG_LOCK_ALLOC
static struct lock_class_key rrs_attr_keys[RRS_ATTR_CLASSES];
#endif

struct rrs_kobj *rrs_kobj_create(struct kobject *parent, const char *name,
				 const char *const *names, const u16 *modes,
				 unsigned int n, void *ctx,
				 const struct rrs_kobj_vt *vt, unsigned int cls)
{
	struct rrs_kobj *k;
	unsigned int i;
	int err;

	k = kzalloc(sizeof(*k), GFP_KERNEL);
	if (!k)
		return ERR_PTR(-ENOMEM);
	k->attrs = kcalloc(n + 1, sizeof(*k->attrs), GFP_KERNEL);
	k->kattrs = kcalloc(n ? n : 1, sizeof(*k->kattrs), GFP_KERNEL);
	if (!k->attrs || !k->kattrs) {
		kfree(k->attrs);
		kfree(k->kattrs);
		kfree(k);
		return ERR_PTR(-ENOMEM);
	}
	for (i = 0; i < n; i++) {
		sysfs_attr_init(&k->kattrs[i].attr);
#ifdef CONFIG_DEBUG_LOCK_ALLOC
		k->kattrs[i].attr.key = &rrs_attr_keys[cls < RRS_ATTR_CLASSES ? cls : 0];
#endif
		k->kattrs[i].attr.name = names[i];
		k->kattrs[i].attr.mode = modes[i];
		k->kattrs[i].show = (modes[i] & 0444) ? rrs_show : NULL;
		k->kattrs[i].store = (modes[i] & 0222) ? rrs_store : NULL;
		k->attrs[i] = &k->kattrs[i].attr;
	}
	k->grp.attrs = k->attrs;
	k->n = n;
	/* Set before the files exist: a read may come as soon as they do. */
	k->ctx = ctx;
	k->vt = vt;
	err = kobject_init_and_add(&k->kobj, &rrs_ktype, parent, "%s", name);
	if (err)
		goto put;
	if (n) {
		err = sysfs_create_group(&k->kobj, &k->grp);
		if (err) {
			/* Waits for running show/store calls. */
			kobject_del(&k->kobj);
			goto put;
		}
	}
	/* From here on the release gives the context back to Rust. */
	k->owns_ctx = true;
	return k;
put:
	/* The caller keeps its context on failure. */
	kobject_put(&k->kobj);
	return ERR_PTR(err);
}
EXPORT_SYMBOL_GPL(rrs_kobj_create);

void rrs_kobj_destroy(struct rrs_kobj *k)
{
	if (k->n)
		sysfs_remove_group(&k->kobj, &k->grp);
	kobject_del(&k->kobj);
	kobject_put(&k->kobj);
}
EXPORT_SYMBOL_GPL(rrs_kobj_destroy);

struct kobject *rrs_kobj_kobj(struct rrs_kobj *k)
{
	return &k->kobj;
}
EXPORT_SYMBOL_GPL(rrs_kobj_kobj);

/* KOBJ_ONLINE (@online) or KOBJ_OFFLINE for @k.  Process context. */
void rrs_kobj_uevent(struct kobject *k, bool online)
{
	kobject_uevent(k, online ? KOBJ_ONLINE : KOBJ_OFFLINE);
}
EXPORT_SYMBOL_GPL(rrs_kobj_uevent);

struct kobject *rrs_dir_create(struct kobject *parent, const char *name)
{
	return kobject_create_and_add(name, parent);
}
EXPORT_SYMBOL_GPL(rrs_dir_create);

void rrs_dir_destroy(struct kobject *kobj)
{
	kobject_del(kobj);
	kobject_put(kobj);
}
EXPORT_SYMBOL_GPL(rrs_dir_destroy);

struct class *rrs_class_create(const char *name)
{
	return class_create(name);
}
EXPORT_SYMBOL_GPL(rrs_class_create);

void rrs_class_destroy(struct class *cls)
{
	class_destroy(cls);
}
EXPORT_SYMBOL_GPL(rrs_class_destroy);

struct device *rrs_class_device_create(struct class *cls, const char *name)
{
	return device_create(cls, NULL, MKDEV(0, 0), NULL, "%s", name);
}
EXPORT_SYMBOL_GPL(rrs_class_device_create);

void rrs_class_device_destroy(struct device *dev)
{
	device_unregister(dev);
}
EXPORT_SYMBOL_GPL(rrs_class_device_destroy);

struct kobject *rrs_device_kobj(struct device *dev)
{
	return &dev->kobj;
}
EXPORT_SYMBOL_GPL(rrs_device_kobj);

/* The link holds a reference to the directory it lives in. */
int rrs_sysfs_link(struct kobject *from, struct kobject *to, const char *name)
{
	int err = sysfs_create_link(from, to, name);

	if (!err)
		kobject_get(from);
	return err;
}
EXPORT_SYMBOL_GPL(rrs_sysfs_link);

void rrs_sysfs_unlink(struct kobject *from, const char *name)
{
	sysfs_remove_link(from, name);
	kobject_put(from);
}
EXPORT_SYMBOL_GPL(rrs_sysfs_unlink);

/*
 * Attribute files on an existing device (the class's "ctl"), served by Rust.
 * Device attributes go through dev_sysfs_ops, so they are device_attributes;
 * each knows its owner through container_of.
 */
struct rrs_dev_files;

struct rrs_dev_file {
	struct device_attribute da;
	struct rrs_dev_files *o;
	unsigned int idx;
	bool created;
};

struct rrs_dev_files {
	struct device *dev;
	void *ctx;
	const struct rrs_kobj_vt *vt;
	unsigned int n;
	struct rrs_dev_file f[];
};

static ssize_t rrs_dev_show(struct device *d, struct device_attribute *a,
			    char *buf)
{
	struct rrs_dev_file *f = container_of(a, struct rrs_dev_file, da);

	return f->o->vt->show(f->o->ctx, f->idx, buf);
}

static ssize_t rrs_dev_store(struct device *d, struct device_attribute *a,
			     const char *buf, size_t n)
{
	struct rrs_dev_file *f = container_of(a, struct rrs_dev_file, da);

	return f->o->vt->store(f->o->ctx, f->idx, buf, n);
}

void rrs_dev_files_destroy(struct rrs_dev_files *o)
{
	unsigned int i;

	/* Each removal waits for running show/store calls of its file. */
	for (i = 0; i < o->n; i++)
		if (o->f[i].created)
			device_remove_file(o->dev, &o->f[i].da);
	put_device(o->dev);
	kfree(o);
}
EXPORT_SYMBOL_GPL(rrs_dev_files_destroy);

struct rrs_dev_files *rrs_dev_files_create(struct device *dev,
					   const char *const *names,
					   const u16 *modes, unsigned int n,
					   void *ctx,
					   const struct rrs_kobj_vt *vt)
{
	struct rrs_dev_files *o;
	unsigned int i;
	int err;

	o = kzalloc(struct_size(o, f, n), GFP_KERNEL);
	if (!o)
		return ERR_PTR(-ENOMEM);
	o->dev = get_device(dev);
	o->ctx = ctx;
	o->vt = vt;
	o->n = n;
	for (i = 0; i < n; i++) {
		struct rrs_dev_file *f = &o->f[i];

		sysfs_attr_init(&f->da.attr);
		f->da.attr.name = names[i];
		f->da.attr.mode = modes[i];
		f->da.show = (modes[i] & 0444) ? rrs_dev_show : NULL;
		f->da.store = (modes[i] & 0222) ? rrs_dev_store : NULL;
		f->o = o;
		f->idx = i;
		err = device_create_file(dev, &f->da);
		if (err) {
			rrs_dev_files_destroy(o);
			return ERR_PTR(err);
		}
		f->created = true;
	}
	return o;
}
EXPORT_SYMBOL_GPL(rrs_dev_files_create);
